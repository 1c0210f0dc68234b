import { clone, create } from "@bufbuild/protobuf";
import {
  type Environment,
  type EnvironmentChanged,
  EnvironmentChangedSchema,
  type EnvironmentRegistered,
  EnvironmentRegisteredSchema,
  EnvironmentSchema,
  type ProtectionPolicy,
  type TargetGroup,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { type RuleDetail, violation } from "./rule-violation.js";

/** The most approvals a protection policy asks for. */
const MAX_QUORUM = 100;
export type EnvironmentEvent = EnvironmentRegistered | EnvironmentChanged;

export interface EnvironmentState {
  environment: Environment | undefined;
}

/** Environments are keyed by name; the stream id says which aggregate it is. */
export const environmentStreamId = (name: string) => `environment-${name}`;

export interface EnvironmentDefinition {
  name: string;
  promotionRank: number;
  /** The previous environment of the promotion order ("" for the first). */
  promotesFrom: string;
  targetGroups: TargetGroup[];
  protection?: ProtectionPolicy | undefined;
  executorLabels: string[];
  /** Whether it is production; undefined: when nothing promotes from it (isProduction). */
  production?: boolean | undefined;
}

export type EnvironmentCommand =
  | { kind: "registerEnvironment"; definition: EnvironmentDefinition; upstream: string[]; elsewhere: TargetElsewhere[] }
  | {
      kind: "changeEnvironment";
      definition: EnvironmentDefinition;
      reason: string;
      upstream: string[];
      elsewhere: TargetElsewhere[];
    }
  | { kind: "setFreeze"; frozen: boolean; reason: string };

/** A target of the definition that another environment has (`environment`). */
export interface TargetElsewhere {
  ciId: string;
  environment: string;
}

/**
 * `upstream`: the promotion order before this environment as it stands, nearest first: its
 * `promotesFrom`, then that environment's promotes_from, and so on, as far as they are registered.
 * `elsewhere`: its targets other environments have (environment_busy is one environment's: two
 * environments sharing a host could deploy to it at once, and each baseline would claim it).
 */
function definitionViolations(
  definition: EnvironmentDefinition,
  upstream: string[],
  elsewhere: TargetElsewhere[],
): RuleDetail[] {
  const violations: RuleDetail[] = elsewhere.map(({ ciId, environment }) => ({
    rule: "environment.target_elsewhere",
    subject: ciId,
    description: `target ${ciId} is a target of environment ${environment}: a host is deployed to by one environment`,
  }));
  const seen = new Map<string, string>();
  for (const group of definition.targetGroups) {
    if (!group.name) {
      violations.push({
        rule: "environment.group_name",
        subject: definition.name,
        description: "a group needs a name",
      });
    }
    for (const ci of group.ciIds) {
      // A CMDB id is a UUID: the same one in upper and lower case is one host.
      const other = seen.get(ci.toLowerCase());
      if (other !== undefined) {
        violations.push({
          rule: "environment.target_in_one_group",
          subject: ci,
          description: `target ${ci} is in groups ${other} and ${group.name}`,
        });
      }
      seen.set(ci.toLowerCase(), group.name);
    }
  }
  if (definition.promotesFrom === definition.name) {
    violations.push({
      rule: "environment.promotes_from",
      subject: definition.name,
      description: "an environment cannot follow itself in the promotion order",
    });
  } else if (definition.promotesFrom && upstream[0] !== definition.promotesFrom) {
    // No package could ever succeed there first: every start here would fail gate.promotion_order.
    violations.push({
      rule: "environment.promotes_from_unknown",
      subject: definition.promotesFrom,
      description: `no environment ${definition.promotesFrom} is registered: register the promotion order from its start`,
    });
  } else if (upstream.includes(definition.name)) {
    // A cycle: no package could ever have succeeded in the environment before, so no deployment
    // in the cycle would pass gate.promotion_order.
    violations.push({
      rule: "environment.promotion_cycle",
      subject: definition.name,
      description: `the promotion order would run in a circle: ${[definition.name, ...upstream.slice(0, upstream.indexOf(definition.name) + 1)].join(" → ")}`,
    });
  }
  const protection = definition.protection;
  if (protection && protection.quorum > 0 && !protection.approvalGroup) {
    violations.push({
      rule: "environment.protection_group",
      subject: definition.name,
      description: "a protection quorum needs an approval group",
    });
  }
  // More approvers than any board has would leave every deployment there waiting for ever.
  if (protection && protection.quorum > MAX_QUORUM) {
    violations.push({
      rule: "environment.protection_quorum",
      subject: definition.name,
      description: `a protection quorum is at most ${MAX_QUORUM}`,
    });
  }
  return violations;
}

const snapshot = (definition: EnvironmentDefinition, previous?: Environment): Environment =>
  Object.assign(previous ? clone(EnvironmentSchema, previous) : create(EnvironmentSchema), {
    name: definition.name,
    promotionRank: definition.promotionRank,
    promotesFrom: definition.promotesFrom,
    targetGroups: definition.targetGroups,
    executorLabels: definition.executorLabels,
    protection: definition.protection,
    production: definition.production,
  });

function checkedDefinition(
  definition: EnvironmentDefinition,
  upstream: string[],
  elsewhere: TargetElsewhere[],
): EnvironmentDefinition {
  const violations = definitionViolations(definition, upstream, elsewhere);
  if (violations.length) {
    throw violation(
      "FAILED_PRECONDITION",
      "environment.definition",
      "the environment definition is inconsistent",
      violations,
      "environment",
      definition.name,
    );
  }
  return definition;
}

export function decideEnvironment(command: EnvironmentCommand, state: EnvironmentState): EnvironmentEvent[] {
  const current = state.environment;
  if (command.kind === "registerEnvironment") {
    if (current) {
      throw violation(
        "ALREADY_EXISTS",
        "environment.exists",
        `environment ${command.definition.name} is already registered`,
        [],
        "environment",
        command.definition.name,
      );
    }
    return [
      create(EnvironmentRegisteredSchema, {
        environment: snapshot(checkedDefinition(command.definition, command.upstream, command.elsewhere)),
      }),
    ];
  }
  if (!current) {
    throw violation("NOT_FOUND", "environment.unknown", "no such environment", [], "environment");
  }
  if (command.kind === "setFreeze") {
    const environment = Object.assign(clone(EnvironmentSchema, current), {
      frozen: command.frozen,
      freezeReason: command.frozen ? command.reason : "",
    });
    return [create(EnvironmentChangedSchema, { environment, reason: command.reason })];
  }
  const environment = snapshot(checkedDefinition(command.definition, command.upstream, command.elsewhere), current);
  return [create(EnvironmentChangedSchema, { environment, reason: command.reason })];
}

export function evolveEnvironment(_state: EnvironmentState, event: EnvironmentEvent): EnvironmentState {
  return { environment: event.environment };
}

/** Every target of the environment (or a definition of it), in group order, each once. */
export const allTargets = (environment: Pick<Environment, "targetGroups">): string[] => [
  ...new Set(environment.targetGroups.flatMap((group) => group.ciIds)),
];

export const groupTargets = (environment: Environment, name: string): string[] =>
  environment.targetGroups.find((group) => group.name === name)?.ciIds ?? [];
