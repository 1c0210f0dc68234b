import { create } from "@bufbuild/protobuf";
import {
  type DeploymentStep,
  DeploymentStepSchema,
  type DeploymentStrategy,
  DeploymentStrategyKind,
  type Environment,
  StepKind,
  StepState,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { touchedTargets } from "./baseline.js";
import { allTargets, groupTargets } from "./environment.js";
import type { RuleDetail } from "./rule-violation.js";

type StepSpec = Partial<Pick<DeploymentStep, "pauseSecondsAfter" | "promotionAfter" | "colour" | "rollback">> &
  Pick<DeploymentStep, "kind" | "targetCiIds" | "label">;

const steps = (specs: StepSpec[], firstIndex = 0): DeploymentStep[] =>
  specs.map((spec, offset) =>
    create(DeploymentStepSchema, { ...spec, index: firstIndex + offset, state: StepState.PENDING }),
  );

const verify = (targetCiIds: string[], colour = ""): StepSpec => ({
  kind: StepKind.VERIFY,
  targetCiIds,
  label: "verify",
  colour,
});

const violation = (rule: string, description: string): RuleDetail => ({ rule, subject: "strategy", description });

export const strategyName = (kind: DeploymentStrategyKind): string => DeploymentStrategyKind[kind] ?? "UNSPECIFIED";

/** The colour a BLUE_GREEN deployment installs on: the one not serving traffic. */
export const idleColour = (liveColour: string) => (liveColour === "blue" ? "green" : "blue");

function rolling(strategy: DeploymentStrategy, targets: string[]): StepSpec[] | RuleDetail[] {
  const size = strategy.batchSize || Math.ceil((strategy.batchPercent * targets.length) / 100);
  if (size < 1 || strategy.batchPercent > 100) {
    return [violation("strategy.rolling_batch", "ROLLING needs a batch_size or a batch_percent in 1..100")];
  }
  const batches: StepSpec[] = [];
  for (let start = 0; start < targets.length; start += size) {
    const batch = targets.slice(start, start + size);
    batches.push({ kind: StepKind.DEPLOY, targetCiIds: batch, label: `batch ${batches.length + 1}` });
  }
  return [...batches, verify(targets)];
}

/** The longest pause after a canary stage: a week. */
const MAX_PAUSE_SECONDS = 7 * 24 * 3600;

function canary(strategy: DeploymentStrategy, targets: string[]): StepSpec[] | RuleDetail[] {
  const stages = strategy.canaryStages;
  const weights = stages.map((stage) => stage.weightPercent);
  const increasing = weights.every((weight, i) => weight > 0 && (i === 0 || weight > (weights[i - 1] ?? 0)));
  if (!stages.length || !increasing || weights.at(-1) !== 100) {
    return [violation("strategy.canary_stages", "CANARY needs stages of increasing weight ending at 100")];
  }
  // A longer pause holds the environment past any window; a manual promotion waits as long as
  // needed. The last stage's pause, and a manual one's, are never waited.
  const paused = stages.slice(0, -1).filter((stage) => !stage.manualPromotion);
  if (paused.some((stage) => stage.pauseSeconds > MAX_PAUSE_SECONDS)) {
    return [
      violation(
        "strategy.canary_pause",
        `a canary stage pauses at most ${MAX_PAUSE_SECONDS} s (7 days): wait longer with manual_promotion`,
      ),
    ];
  }
  const specs: StepSpec[] = [];
  let covered = 0;
  stages.forEach((stage, i) => {
    const last = i === stages.length - 1;
    // A stage reaches no more than its weight (rounded down: a canary exposes no more than asked),
    // but at least one more target, so small environments still go stage by stage; the label says
    // how many it reached.
    const upTo = Math.min(
      targets.length,
      Math.max(covered + 1, Math.floor((stage.weightPercent * targets.length) / 100)),
    );
    if (upTo <= covered) return;
    specs.push({
      kind: StepKind.DEPLOY,
      targetCiIds: targets.slice(covered, upTo),
      label: `canary ${stage.weightPercent}% (${upTo} of ${targets.length} targets)`,
      pauseSecondsAfter: last ? 0 : stage.pauseSeconds,
      promotionAfter: !last && stage.manualPromotion,
    });
    covered = upTo;
  });
  // The last reached stage leads straight to verification; it reached every target, whatever
  // its weight said (more stages than targets), and its label says so.
  const final = specs.at(-1);
  if (final)
    Object.assign(final, {
      pauseSecondsAfter: 0,
      promotionAfter: false,
      label: `canary 100% (${targets.length} of ${targets.length} targets)`,
    });
  return [...specs, verify(targets)];
}

function blueGreen(environment: Environment, liveColour: string): StepSpec[] | RuleDetail[] {
  const idle = idleColour(liveColour);
  const idleTargets = groupTargets(environment, idle);
  if (!idleTargets.length || !groupTargets(environment, liveColour || idleColour(idle)).length) {
    return [violation("strategy.blue_green_groups", "BLUE_GREEN needs non-empty target groups blue and green")];
  }
  return [
    { kind: StepKind.DEPLOY, targetCiIds: idleTargets, label: `deploy ${idle}`, colour: idle },
    verify(idleTargets, idle),
    { kind: StepKind.SWITCH, targetCiIds: idleTargets, label: `switch to ${idle}`, colour: idle },
  ];
}

function pilot(strategy: DeploymentStrategy, environment: Environment, targets: string[]): StepSpec[] | RuleDetail[] {
  const group = strategy.pilotGroup || "pilot";
  const pilots = groupTargets(environment, group);
  const rest = targets.filter((ci) => !pilots.includes(ci));
  if (!pilots.length || !rest.length) {
    return [violation("strategy.pilot_group", `PILOT needs a non-empty group ${group} and other targets`)];
  }
  return [
    { kind: StepKind.DEPLOY, targetCiIds: pilots, label: group, promotionAfter: true },
    { kind: StepKind.DEPLOY, targetCiIds: rest, label: "rest" },
    verify(targets),
  ];
}

/**
 * Expands a plan's strategy over the environment's targets into the steps executors claim, or
 * lists why it cannot. Every plan ends with a verification (BLUE_GREEN: then the switch).
 */
export function expandStrategy(
  strategy: DeploymentStrategy,
  environment: Environment,
): { steps: DeploymentStep[]; violations: RuleDetail[] } {
  const targets = allTargets(environment);
  if (!targets.length) {
    return { steps: [], violations: [violation("environment.targets", `${environment.name} has no targets`)] };
  }
  let specs: StepSpec[] | RuleDetail[];
  switch (strategy.kind) {
    case DeploymentStrategyKind.ALL_AT_ONCE:
      specs = [{ kind: StepKind.DEPLOY, targetCiIds: targets, label: "all" }, verify(targets)];
      break;
    case DeploymentStrategyKind.ROLLING:
      specs = rolling(strategy, targets);
      break;
    case DeploymentStrategyKind.CANARY:
      specs = canary(strategy, targets);
      break;
    case DeploymentStrategyKind.BLUE_GREEN:
      specs = blueGreen(environment, environment.liveColour);
      break;
    case DeploymentStrategyKind.PILOT:
      specs = pilot(strategy, environment, targets);
      break;
    default:
      // The API refuses these (protovalidate); a guard for the decider's other callers.
      specs = [violation("strategy.kind", "an unknown or unset strategy kind")];
  }
  const isViolations = (value: StepSpec[] | RuleDetail[]): value is RuleDetail[] => "rule" in (value[0] ?? {});
  return isViolations(specs) ? { steps: [], violations: specs } : { steps: steps(specs), violations: [] };
}

/**
 * The steps that back a deployment out to its baseline: restore it on every target a deploy step
 * touched, then verify unless `fast`. BLUE_GREEN first switches traffic back to the colour live
 * before it (an instant back-out) when it had switched; the colour it deployed to then gets the
 * baseline back too, so each colour runs what the baseline says it does (a later back-out that
 * switches to it finds the version recorded there). With no colour live before, traffic stays.
 */
export function rollbackSteps(
  plan: { steps: DeploymentStep[]; previousColour: string; switched: boolean; blueGreen: boolean },
  fast: boolean,
): DeploymentStep[] {
  const colour = plan.previousColour;
  const switchBack: StepSpec[] =
    plan.blueGreen && plan.switched && colour
      ? [
          {
            kind: StepKind.SWITCH,
            targetCiIds: plan.steps.find((step) => step.kind === StepKind.SWITCH)?.targetCiIds ?? [],
            label: `switch back to ${colour}`,
            colour,
            rollback: true,
          },
        ]
      : [];
  const touched = touchedTargets(plan.steps);
  const restore: StepSpec = {
    kind: StepKind.ROLLBACK,
    targetCiIds: touched,
    label: "restore baseline",
    rollback: true,
  };
  const restoring = !touched.length ? [] : fast ? [restore] : [restore, { ...verify(touched), rollback: true }];
  return steps([...switchBack, ...restoring], plan.steps.length);
}
