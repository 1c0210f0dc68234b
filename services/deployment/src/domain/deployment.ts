import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sameSubject } from "@rdm/auth";
import { instantOf } from "@rdm/proto";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { type Deployment, DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeployedArtifact,
  DeploymentApprovalGrantedSchema,
  DeploymentCancelledSchema,
  DeploymentPausedSchema,
  DeploymentPlannedSchema,
  DeploymentPromotedSchema,
  DeploymentResumedSchema,
  DeploymentScheduledSchema,
  DeploymentStartedSchema,
  type DeploymentStrategy,
  DeploymentStrategyKind,
  type Environment,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { baselineTooLarge, packageNames, placedBy, scopedTo } from "./baseline.js";
import { type DeploymentAggregateState, type DeploymentEvent, isTerminal } from "./deployment-evolve.js";
import { decideStepCommand, type StepCommand } from "./executor-steps.js";
import { abandonRollback, type RollbackFacts, requireCurrent, startRollback } from "./rollback.js";
import { naming, type RuleDetail, refuse, violation } from "./rule-violation.js";
import { expandStrategy, strategyName } from "./strategy.js";

export type DeploymentCommand =
  | {
      kind: "planDeployment";
      deploymentId: string;
      releaseId: string;
      environment: Environment;
      artifacts: DeployedArtifact[];
      strategy: DeploymentStrategy;
      window: TimeWindow | undefined;
      linkedChangeIds: string[];
      /** The release topic said the release was abandoned (gate_releases): no deployment of it can start. */
      releaseAbandoned: boolean;
      now: Date;
    }
  | { kind: "approveDeployment"; approver: string; approverGroups: string[]; approvalGroup: string; comment: string }
  | {
      kind: "startDeployment";
      /** Unmet gates the API found from its read models (release, changes, DML, environment). */
      gateViolations: RuleDetail[];
      /** What the environment runs on its targets now (the start keeps its package's names of it). */
      baseline: DeployedArtifact[];
      /** The environment's live colour now (BLUE_GREEN: the plan's steps were laid out for the one at plan time). */
      liveColour: string;
      /** Recorded when a freeze was overridden, with the calendar's freeze windows it set aside. */
      freezeOverrideJustification: string;
      overriddenFreezeWindowIds: string[];
      /** The change requests the gates checked (the plan's and the release's links). */
      changeRequestIds: string[];
      now: Date;
    }
  | { kind: "pauseDeployment"; reason: string }
  | { kind: "resumeDeployment" }
  | { kind: "promoteDeployment"; comment: string }
  | { kind: "cancelDeployment"; reason: string }
  /** The service's own: a scheduled deployment whose window ended before any executor came is cancelled. */
  | { kind: "expireSchedule"; now: Date }
  | ({ kind: "rollbackDeployment"; reason: string; fast: boolean } & RollbackFacts)
  | { kind: "abandonRollback"; reason: string }
  | StepCommand;

const existing = (state: DeploymentAggregateState): Deployment =>
  state.deployment ??
  (() => {
    throw violation("NOT_FOUND", "deployment.unknown", "no such deployment");
  })();

const requireState = (deployment: Deployment, allowed: DeploymentState[], action: string) => {
  if (!allowed.includes(deployment.state)) {
    refuse("deployment.state", `cannot ${action} a deployment in state ${DeploymentState[deployment.state]}`);
  }
};

function plan(command: Extract<DeploymentCommand, { kind: "planDeployment" }>, state: DeploymentAggregateState) {
  if (state.deployment) {
    throw violation("ALREADY_EXISTS", "deployment.exists", "the deployment already exists");
  }
  // As would an abandoned release (its deployments not begun were cancelled with it).
  if (command.releaseAbandoned) {
    const description = `release ${command.releaseId} was abandoned: plan the deployment of a release that is not`;
    throw violation("FAILED_PRECONDITION", "gate.release_abandoned", description, [
      { rule: "gate.release_abandoned", subject: command.releaseId, description },
    ]);
  }
  // A window already over would leave a deployment that can never start.
  const [passed] = windowPassed({ deploymentId: command.deploymentId, window: command.window }, command.now);
  if (passed) throw violation("FAILED_PRECONDITION", passed.rule, passed.description, [passed]);
  const { steps, violations } = expandStrategy(command.strategy, command.environment);
  if (violations.length) {
    throw violation("FAILED_PRECONDITION", "deployment.plan", "the plan cannot be expanded", violations);
  }
  const protection = command.environment.protection;
  return [
    create(DeploymentPlannedSchema, {
      deploymentId: command.deploymentId,
      releaseId: command.releaseId,
      environment: command.environment.name,
      artifacts: placedBy(command.artifacts, steps),
      strategy: command.strategy,
      ...(command.window ? { window: command.window } : {}),
      // Once each: a change named twice (in two cases, made one by the API) is one link.
      linkedChangeIds: [...new Set(command.linkedChangeIds)],
      steps,
      requiredApprovals: protection?.quorum ?? 0,
      approvalGroup: protection?.approvalGroup ?? "",
      previousColour: command.environment.liveColour,
    }),
  ];
}

function approve(command: Extract<DeploymentCommand, { kind: "approveDeployment" }>, deployment: Deployment) {
  // Subjects are compared folded, as in release and change approvals: "Alice" is alice.
  if (sameSubject(command.approver, deployment.createdBy)) {
    throw violation(
      "PERMISSION_DENIED",
      "deployment.creator_cannot_approve",
      "the deployment's creator may not approve it",
    );
  }
  if (deployment.requiredApprovals === 0) {
    refuse(
      "deployment.approval_not_required",
      `${deployment.environment} requires no approval: its deployments need none`,
    );
  }
  if (!command.approverGroups.includes(command.approvalGroup)) {
    throw violation(
      "PERMISSION_DENIED",
      "deployment.approval_group",
      `approvals come from members of ${command.approvalGroup}`,
    );
  }
  if (deployment.state === DeploymentState.PLANNED && deployment.requiredApprovals > 0) {
    refuse(
      "deployment.approved",
      `the deployment is approved already: ${deployment.approvers.join(", ")} met the quorum of ${deployment.requiredApprovals}; it may start`,
    );
  }
  requireState(deployment, [DeploymentState.AWAITING_APPROVAL], "approve");
  if (deployment.approvers.some((approver) => sameSubject(approver, command.approver))) {
    refuse("deployment.approved_once", `${command.approver} already approved this deployment`);
  }
  const quorumReached = deployment.approvers.length + 1 >= deployment.requiredApprovals;
  return [
    create(DeploymentApprovalGrantedSchema, {
      deploymentId: deployment.deploymentId,
      approver: command.approver,
      comment: command.comment,
      quorumReached,
    }),
  ];
}

function start(command: Extract<DeploymentCommand, { kind: "startDeployment" }>, deployment: Deployment) {
  requireState(deployment, [DeploymentState.PLANNED, DeploymentState.AWAITING_APPROVAL], "start");
  const violations = [...command.gateViolations];
  if (deployment.state === DeploymentState.AWAITING_APPROVAL) {
    violations.push({
      rule: "deployment.protection_approval",
      subject: deployment.environment,
      description: `${deployment.approvers.length} of ${deployment.requiredApprovals} protection approvals granted`,
    });
  }
  if (
    deployment.strategy?.kind === DeploymentStrategyKind.BLUE_GREEN &&
    deployment.previousColour !== command.liveColour
  ) {
    // Its steps deploy to the colour that was idle at plan time, which now serves traffic.
    violations.push({
      rule: "deployment.colour_stale",
      subject: deployment.environment,
      description: `planned while ${deployment.previousColour || "no colour"} was live, ${command.liveColour} is live now: plan it again`,
    });
  }
  violations.push(...windowPassed(deployment, command.now));
  const names = packageNames(deployment.artifacts);
  const baseline = scopedTo(command.baseline, names);
  const scheduled = create(DeploymentScheduledSchema, {
    deploymentId: deployment.deploymentId,
    baseline,
    baselineArtifactNames: names,
    availableAt: timestampFromDate(beginsAt(deployment, command.now)),
    freezeOverrideJustification: command.freezeOverrideJustification,
    overriddenFreezeWindowIds: command.overriddenFreezeWindowIds,
    changeRequestIds: command.changeRequestIds,
  });
  const encodedBytes = toBinary(DeploymentScheduledSchema, scheduled).byteLength;
  const tooLarge = baselineTooLarge(deployment.environment, baseline, encodedBytes);
  if (tooLarge) violations.push(tooLarge);
  if (violations.length) {
    throw violation(
      "FAILED_PRECONDITION",
      "deployment.gates",
      `${violations.length} gate(s) not met: ${violations.map((v) => v.rule).join(", ")}`,
      violations,
    );
  }
  return [scheduled];
}

/** When a deployment started `now` begins: its window's start when that is ahead, else now. */
export function beginsAt(deployment: Deployment, now: Date): Date {
  const windowStart = instantOf(deployment.window?.start, undefined);
  return windowStart && windowStart > now ? windowStart : now;
}

/** `deployment.window_passed` if the planned window has ended by `now`. */
function windowPassed(deployment: Pick<Deployment, "deploymentId" | "window">, now: Date): RuleDetail[] {
  const windowEnd = instantOf(deployment.window?.end, undefined);
  if (!windowEnd || windowEnd > now) return [];
  return [
    {
      rule: "deployment.window_passed",
      subject: deployment.deploymentId,
      description: `the deployment's window ended at ${windowEnd.toISOString()}: plan it again with a new window`,
    },
  ];
}

/** The longest reason a cancellation records (code points), as CancelDeployment takes. */
const MAX_REASON_LENGTH = 2000;

/**
 * A scheduled deployment about to begin (its first claim), with the gates as they stand then: one
 * that no longer holds (a freeze declared since, the change's window over, the release abandoned,
 * an artifact quarantined) or a window ended before any executor came cancels it rather than
 * start it, naming what failed. Undefined: it may begin.
 */
export function cancelledWhenDue(deployment: Deployment, gateViolations: RuleDetail[], now: Date) {
  const unmet = [...gateViolations, ...windowPassed(deployment, now)];
  if (!unmet.length) return undefined;
  const listed = unmet.map((v) => `${v.rule} (${v.subject}): ${v.description}`).join("; ");
  const reason = `not started: ${unmet.length} gate(s) not met when it was due to begin: ${listed}`;
  return create(DeploymentCancelledSchema, {
    deploymentId: deployment.deploymentId,
    // Cut by code points, as max_len counts them, so no surrogate pair is split.
    reason: reason.length > MAX_REASON_LENGTH ? `${[...reason].slice(0, MAX_REASON_LENGTH - 1).join("")}…` : reason,
  });
}

/** The deployment begins, implementing `changeRequestIds` (see gatesAsItBegins); its outcomes name them too. */
export const started = (deployment: Deployment, changeRequestIds: string[]) =>
  create(DeploymentStartedSchema, {
    deploymentId: deployment.deploymentId,
    releaseId: deployment.releaseId,
    environment: deployment.environment,
    artifacts: deployment.artifacts,
    strategy: strategyName(deployment.strategy?.kind ?? DeploymentStrategyKind.UNSPECIFIED),
    changeRequestIds,
    changeRequestIdsRecorded: true,
  });

const RUNNING = [DeploymentState.SCHEDULED, DeploymentState.IN_PROGRESS, DeploymentState.VERIFYING];

function control(command: DeploymentCommand, deployment: Deployment): DeploymentEvent[] {
  const deploymentId = deployment.deploymentId;
  switch (command.kind) {
    case "pauseDeployment":
      requireState(deployment, RUNNING, "pause");
      if (deployment.paused) refuse("deployment.paused", "the deployment is already paused");
      return [create(DeploymentPausedSchema, { deploymentId, reason: command.reason })];
    case "resumeDeployment":
      if (!deployment.paused) refuse("deployment.not_paused", "the deployment is not paused");
      return [create(DeploymentResumedSchema, { deploymentId })];
    case "promoteDeployment":
      requireState(deployment, RUNNING, "promote");
      if (!deployment.awaitingPromotion) refuse("deployment.no_promotion", "no stage is waiting for a promotion");
      return [create(DeploymentPromotedSchema, { deploymentId, comment: command.comment })];
    case "cancelDeployment":
      if (deployment.state === DeploymentState.ROLLING_BACK)
        refuse(
          "deployment.state",
          "cannot cancel a deployment in state ROLLING_BACK: its rollback restores the baseline and is retried until it does (see its failed rollback steps), or until AbandonRollback gives it up",
        );
      requireState(
        deployment,
        [DeploymentState.PLANNED, DeploymentState.AWAITING_APPROVAL, DeploymentState.SCHEDULED],
        "cancel (roll back a started one instead)",
      );
      return [create(DeploymentCancelledSchema, { deploymentId, reason: command.reason })];
    case "expireSchedule": {
      // As its first claim would find it (cancelledWhenDue), the window's end alone checked.
      const cancelled =
        deployment.state === DeploymentState.SCHEDULED ? cancelledWhenDue(deployment, [], command.now) : undefined;
      return cancelled ? [cancelled] : [];
    }
    case "rollbackDeployment":
      if (deployment.state === DeploymentState.SCHEDULED) {
        refuse("deployment.state", "cannot roll back a deployment that has not begun (it changed nothing): cancel it");
      }
      requireState(
        deployment,
        [DeploymentState.IN_PROGRESS, DeploymentState.VERIFYING, DeploymentState.SUCCEEDED, DeploymentState.FAILED],
        "roll back",
      );
      // A deployment since may have replaced what this rollback would restore.
      if (deployment.rollbackAbandoned) {
        refuse(
          "deployment.rollback_abandoned",
          "its rollback was given up: put its targets right with a new deployment (or by hand)",
        );
      }
      requireCurrent(deployment, command);
      return startRollback(deployment, command.reason, false, command.fast);
    case "abandonRollback":
      requireState(deployment, [DeploymentState.ROLLING_BACK], "give up the rollback of");
      return abandonRollback(deployment, command.reason);
    default:
      return decideStepCommand(command as StepCommand, deployment);
  }
}

/** The events of the command; a refusal that names nothing else names the deployment (by its id). */
export function decide(command: DeploymentCommand, state: DeploymentAggregateState): DeploymentEvent[] {
  const deploymentId = command.kind === "planDeployment" ? command.deploymentId : state.deployment?.deploymentId;
  try {
    if (command.kind === "planDeployment") return plan(command, state);
    const deployment = existing(state);
    return decideOn(command, deployment).map((event) => aboutDeployment(event, deployment));
  } catch (error) {
    throw deploymentId ? naming(error, deploymentId) : error;
  }
}

function decideOn(command: DeploymentCommand, deployment: Deployment): DeploymentEvent[] {
  if (command.kind === "approveDeployment") return approve(command, deployment);
  if (command.kind === "startDeployment") return start(command, deployment);
  if (isTerminal(deployment) && command.kind !== "rollbackDeployment") {
    refuse("deployment.finished", `the deployment is ${DeploymentState[deployment.state]}`);
  }
  return control(command, deployment);
}

/**
 * Every event of a deployment names its release and environment (consumers filter on them); its
 * outcomes also the change requests it implements, as its start recorded them.
 */
function aboutDeployment(event: DeploymentEvent, deployment: Deployment): DeploymentEvent {
  if ("releaseId" in event) {
    event.releaseId = deployment.releaseId;
    event.environment = deployment.environment;
  }
  // A start names its own (those it begins with); the events after it name the same, the whole
  // list even when empty (change_request_ids_recorded: none, not "from before the field").
  if ("changeRequestIdsRecorded" in event && event.$typeName !== DeploymentStartedSchema.typeName) {
    event.changeRequestIds = [...deployment.changeRequestIds];
    event.changeRequestIdsRecorded = true;
  }
  return event;
}
