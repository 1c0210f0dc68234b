// Helpers of the decider specs: an environment, a plan, and a fold that stamps metadata as the
// command runner does (stream version, actor, time), so evolve sees what it sees in production.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { EventMetadataSchema, type TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  DeployedArtifactSchema,
  type DeploymentStrategy,
  DeploymentStrategySchema,
  type Environment,
  EnvironmentSchema,
  StepKind,
  TargetGroupSchema,
  TargetOutcome,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  allTargets,
  type DeploymentAggregateState,
  type DeploymentCommand,
  type DeploymentEvent,
  decide,
  evolve,
  initialState,
  type RuleDetail,
  RuleViolation,
} from "../src/domain/index.js";

export const NOW = new Date("2031-03-01T10:00:00Z");

/** An executor's report on a target of step `index` (SUCCEEDED unless `extra` says otherwise). */
export const report = (index: number, fencingToken: bigint, ciId: string, extra: object = {}) => ({
  kind: "reportTargetProgress" as const,
  stepIndex: index,
  fencingToken,
  ciId,
  outcome: TargetOutcome.SUCCEEDED,
  message: "",
  logLines: [],
  verifications: [],
  ...extra,
});

export const environment = (overrides: Partial<Environment> = {}): Environment =>
  Object.assign(
    create(EnvironmentSchema, {
      name: "staging",
      promotionRank: 3,
      targetGroups: [
        create(TargetGroupSchema, { name: "pilot", ciIds: ["ci-1"] }),
        create(TargetGroupSchema, { name: "rest", ciIds: ["ci-2", "ci-3", "ci-4"] }),
      ],
    }),
    overrides,
  );

export const strategy = (init: Partial<DeploymentStrategy>): DeploymentStrategy =>
  Object.assign(create(DeploymentStrategySchema), init);

export const baseline = [create(DeployedArtifactSchema, { artifactId: "a-old", name: "api", version: "1.0.0" })];

export class Deciding {
  events: DeploymentEvent[] = [];
  state: DeploymentAggregateState = initialState();
  constructor(public actor = "deployer-1") {}

  /**
   * Decides, stamps and folds; returns the new events. Checks on the way, for every spec, that
   * each event names the deployment's release and environment (what subscribers filter on).
   */
  run(command: DeploymentCommand, actor = this.actor): DeploymentEvent[] {
    const decided = decide(command, this.state);
    for (const event of decided) {
      event.metadata = create(EventMetadataSchema, {
        actor,
        streamVersion: BigInt(this.events.length + 1),
        occurredAt: timestampFromDate(NOW),
      });
      this.events.push(event);
      this.state = evolve(this.state, event);
    }
    const { releaseId, environment } = this.deployment;
    for (const { $typeName: type, ...event } of decided) {
      expect({ type, releaseId: event.releaseId, environment: event.environment }).toEqual({
        type,
        releaseId,
        environment,
      });
    }
    return decided;
  }

  get deployment() {
    const deployment = this.state.deployment;
    if (!deployment) throw new Error("no deployment");
    return deployment;
  }

  types(events: DeploymentEvent[]) {
    return events.map((event) => event.$typeName.replace("rdm.deployment.v1.", ""));
  }

  /** The environment planned in. */
  environment = environment();

  plan(deploymentStrategy: DeploymentStrategy, env = environment(), window?: TimeWindow, now = NOW) {
    this.environment = env;
    return this.run({
      kind: "planDeployment",
      deploymentId: "d-1",
      releaseId: "r-1",
      environment: env,
      artifacts: [create(DeployedArtifactSchema, { artifactId: "a-new", name: "api", version: "2.0.0" })],
      strategy: deploymentStrategy,
      window,
      linkedChangeIds: [],
      releaseAbandoned: false,
      now,
    });
  }

  /** Starts it, the environment's live colour as at plan time unless given. */
  start(liveColour = this.deployment.previousColour) {
    return this.run(this.startCommand(liveColour));
  }

  /** The start command, with the gates met and `baseline` running in the environment. */
  startCommand(liveColour = this.deployment.previousColour) {
    return {
      kind: "startDeployment" as const,
      gateViolations: [],
      baseline,
      liveColour,
      freezeOverrideJustification: "",
      overriddenFreezeWindowIds: [],
      changeRequestIds: ["c-1"],
      now: NOW,
    };
  }

  /**
   * Claims step `index` and returns its fencing token; `begins`: a first claim's gates and changes
   * (none: its gates met, the changes its start checked).
   */
  claim(
    index: number,
    executorId = "exec-1",
    leaseExpired = false,
    begins?: { violations: RuleDetail[]; changeRequestIds: string[] },
  ) {
    this.run(
      {
        kind: "claimStep",
        stepIndex: index,
        executorId,
        leaseExpiresAt: new Date(NOW.getTime() + 30_000),
        leaseExpired,
        begins,
        now: NOW,
      },
      executorId,
    );
    return this.deployment.steps[index]?.fencingToken ?? 0n;
  }

  complete(index: number, fencingToken: bigint) {
    return this.run({ kind: "completeStep", stepIndex: index, fencingToken, now: NOW });
  }

  /**
   * Rolls it back; by default the environment runs what this deployment left and nothing else runs
   * there. `baseline`: what it runs, as artifact ids, each of the plan's version of api on every
   * target unless given as [id, name, version, targets].
   */
  rollback(
    fast = false,
    environment: {
      baselineDeploymentId?: string;
      baseline?: (string | [string, string, string, string[]])[];
      running?: string;
    } = {},
  ) {
    const targetCiIds = allTargets(this.environment);
    const artifacts = (environment.baseline ?? []).map((entry) => {
      const [artifactId, name, version, targets] =
        typeof entry === "string" ? [entry, "api", "2.0.0", targetCiIds] : entry;
      return create(DeployedArtifactSchema, { artifactId, name, version, targetCiIds: targets });
    });
    return this.run({
      kind: "rollbackDeployment",
      reason: "backing out",
      fast,
      environmentBaseline: {
        deploymentId: environment.baselineDeploymentId ?? this.deployment.deploymentId,
        artifacts,
        targetCiIds,
      },
      runningDeploymentId: environment.running,
    });
  }

  /** Reports every target of the step SUCCEEDED under the lease (a switch has none to report). */
  reportAll(index: number, fencingToken: bigint) {
    const step = this.deployment.steps[index];
    if (step?.kind === StepKind.SWITCH) return;
    for (const ciId of step?.targetCiIds ?? []) this.run(report(index, fencingToken, ciId));
  }

  /** Claims the step, reports its targets, completes it. */
  pass(index: number) {
    const token = this.claim(index);
    this.reportAll(index, token);
    return this.complete(index, token);
  }
}

export function refusal(run: () => unknown): RuleViolation {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(RuleViolation);
    return error as RuleViolation;
  }
  throw new Error("expected a refusal");
}
