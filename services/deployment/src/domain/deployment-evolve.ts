import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type CopyOnceFold, foldCopyingOnce } from "@rdm/domain-kernel/fold";
import { type Deployment, DeploymentSchema, DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeploymentApprovalGranted,
  type DeploymentCancelled,
  type DeploymentFailed,
  type DeploymentPaused,
  type DeploymentPlanned,
  type DeploymentPromoted,
  type DeploymentResumed,
  type DeploymentRollbackAbandoned,
  type DeploymentRollbackStarted,
  type DeploymentRolledBack,
  type DeploymentScheduled,
  type DeploymentStarted,
  type DeploymentStep,
  type DeploymentStepClaimed,
  type DeploymentStepCompleted,
  type DeploymentStepFailed,
  type DeploymentStepLeaseExpired,
  type DeploymentStepReleased,
  type DeploymentSucceeded,
  type DeploymentTargetProgressed,
  type DeploymentVerificationRecorded,
  StepKind,
  StepState,
  TargetOutcome,
  TargetStatusSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";

/** Events of the deployment aggregate ($typeName is the CloudEvents type). */
export type DeploymentEvent =
  | DeploymentPlanned
  | DeploymentApprovalGranted
  | DeploymentScheduled
  | DeploymentStarted
  | DeploymentStepClaimed
  | DeploymentStepReleased
  | DeploymentStepLeaseExpired
  | DeploymentTargetProgressed
  | DeploymentVerificationRecorded
  | DeploymentStepCompleted
  | DeploymentStepFailed
  | DeploymentPaused
  | DeploymentResumed
  | DeploymentPromoted
  | DeploymentSucceeded
  | DeploymentFailed
  | DeploymentRollbackStarted
  | DeploymentRolledBack
  | DeploymentRollbackAbandoned
  | DeploymentCancelled;

export interface DeploymentAggregateState {
  deployment: Deployment | undefined;
}

export const initialState = (): DeploymentAggregateState => ({ deployment: undefined });

const TERMINAL = new Set([DeploymentState.SUCCEEDED, DeploymentState.ROLLED_BACK, DeploymentState.CANCELLED]);

/** The outcomes that end a target's part in a step. */
const REPORTED = new Set([TargetOutcome.SUCCEEDED, TargetOutcome.FAILED]);

/** States in which a claimed step sets the state by its kind. */
const STEPPING = [DeploymentState.IN_PROGRESS, DeploymentState.VERIFYING];

const readyNext = (deployment: Deployment, after: number, at: Timestamp | undefined) => {
  const next = deployment.steps.find((step) => step.index > after && step.state === StepState.PENDING);
  if (next && next.rollback === deployment.steps[after]?.rollback) {
    next.state = StepState.READY;
    if (at) next.availableAt = at;
  }
};

const backToQueue = (step: DeploymentStep, at: Timestamp | undefined) => {
  step.state = StepState.READY;
  step.executorId = "";
  step.leaseExpiresAt = undefined;
  if (at) step.availableAt = at;
};

function applyStepEvent(deployment: Deployment, event: DeploymentEvent, at: Timestamp | undefined) {
  if (!("stepIndex" in event)) return;
  const step = deployment.steps[event.stepIndex];
  if (!step) return;
  switch (event.$typeName) {
    case "rdm.deployment.v1.DeploymentStepClaimed":
      Object.assign(step, {
        state: StepState.CLAIMED,
        fencingToken: event.fencingToken,
        executorId: event.executorId,
        leaseExpiresAt: event.leaseExpiresAt,
        reportedCiIds: [],
      });
      // VERIFYING while a verification runs; a later step (the next stage, the switch) runs IN_PROGRESS.
      if (!step.rollback && STEPPING.includes(deployment.state))
        deployment.state = step.kind === StepKind.VERIFY ? DeploymentState.VERIFYING : DeploymentState.IN_PROGRESS;
      break;
    case "rdm.deployment.v1.DeploymentStepReleased":
    case "rdm.deployment.v1.DeploymentStepLeaseExpired":
      backToQueue(step, at);
      break;
    case "rdm.deployment.v1.DeploymentTargetProgressed": {
      const status = create(TargetStatusSchema, { ciId: event.ciId, outcome: event.outcome, message: event.message });
      const i = deployment.targets.findIndex((target) => target.ciId === event.ciId);
      if (i >= 0) deployment.targets[i] = status;
      else deployment.targets.push(status);
      // Its last report counts: a target reported IN_PROGRESS after its outcome is at work again.
      if (!REPORTED.has(event.outcome)) step.reportedCiIds = step.reportedCiIds.filter((ci) => ci !== event.ciId);
      else if (!step.reportedCiIds.includes(event.ciId)) step.reportedCiIds.push(event.ciId);
      // Whether its deploy failed, whatever a verification says of it later.
      if (step.kind === StepKind.DEPLOY && !step.rollback) {
        const others = deployment.deployFailedCiIds.filter((ci) => ci !== event.ciId);
        deployment.deployFailedCiIds = event.outcome === TargetOutcome.FAILED ? [...others, event.ciId] : others;
      }
      break;
    }
    case "rdm.deployment.v1.DeploymentStepCompleted":
      step.state = StepState.COMPLETED;
      step.leaseExpiresAt = undefined;
      if (step.kind === StepKind.SWITCH) deployment.switched = !step.rollback;
      if (step.promotionAfter && !step.rollback) deployment.awaitingPromotion = true;
      else readyNext(deployment, step.index, event.nextAvailableAt ?? at);
      break;
    case "rdm.deployment.v1.DeploymentStepFailed":
      // A failed rollback step goes back to the queue, after a pause: the baseline must be restored.
      if (step.rollback) {
        step.failures += 1;
        backToQueue(step, event.retryAt ?? at);
      } else step.state = StepState.FAILED;
      break;
  }
}

const skipUnfinished = (deployment: Deployment) => {
  for (const step of deployment.steps) {
    if (step.state !== StepState.COMPLETED && step.state !== StepState.FAILED) {
      step.state = StepState.SKIPPED;
      step.leaseExpiresAt = undefined;
    }
  }
};

function applyLifecycleEvent(deployment: Deployment, event: DeploymentEvent, at: Timestamp | undefined) {
  switch (event.$typeName) {
    case "rdm.deployment.v1.DeploymentApprovalGranted":
      deployment.approvers.push(event.approver);
      if (event.quorumReached) deployment.state = DeploymentState.PLANNED;
      break;
    case "rdm.deployment.v1.DeploymentScheduled": {
      deployment.state = DeploymentState.SCHEDULED;
      deployment.baseline = event.baseline;
      deployment.baselineArtifactNames = event.baselineArtifactNames;
      deployment.freezeOverrideJustification = event.freezeOverrideJustification;
      deployment.changeRequestIds = event.changeRequestIds;
      const first = deployment.steps[0];
      if (first) Object.assign(first, { state: StepState.READY, availableAt: event.availableAt });
      break;
    }
    case "rdm.deployment.v1.DeploymentStarted":
      deployment.state = DeploymentState.IN_PROGRESS;
      deployment.changeRequestIds = event.changeRequestIds;
      break;
    case "rdm.deployment.v1.DeploymentPaused":
      deployment.paused = true;
      deployment.reason = event.reason;
      break;
    case "rdm.deployment.v1.DeploymentResumed":
      Object.assign(deployment, { paused: false, reason: "" });
      break;
    case "rdm.deployment.v1.DeploymentPromoted": {
      deployment.awaitingPromotion = false;
      const done = deployment.steps.filter((step) => step.state === StepState.COMPLETED).at(-1);
      readyNext(deployment, done?.index ?? -1, at);
      break;
    }
    // An ended deployment is on hold no more (a pause taken during its last step).
    case "rdm.deployment.v1.DeploymentSucceeded":
      Object.assign(deployment, { state: DeploymentState.SUCCEEDED, paused: false, reason: "" });
      deployment.succeededArtifacts = structuredClone(event.artifacts);
      break;
    case "rdm.deployment.v1.DeploymentFailed":
      Object.assign(deployment, { state: DeploymentState.FAILED, paused: false, reason: event.reason });
      deployment.failureRecorded = true;
      // The step the failure came in (a failed verification, too many failed targets) failed; the
      // rollback that follows drops the ones not run.
      for (const step of deployment.steps) {
        if (step.state === StepState.CLAIMED && !step.rollback)
          Object.assign(step, { state: StepState.FAILED, leaseExpiresAt: undefined });
      }
      break;
    case "rdm.deployment.v1.DeploymentRollbackStarted": {
      skipUnfinished(deployment);
      Object.assign(deployment, { state: DeploymentState.ROLLING_BACK, paused: false, awaitingPromotion: false });
      deployment.reason = event.reason;
      // Copies: later events change the steps in place.
      deployment.steps.push(...structuredClone(event.steps));
      const first = event.steps[0] && deployment.steps[event.steps[0].index];
      if (first) Object.assign(first, { state: StepState.READY, availableAt: at });
      break;
    }
    case "rdm.deployment.v1.DeploymentRolledBack":
      Object.assign(deployment, { state: DeploymentState.ROLLED_BACK, paused: false });
      break;
    case "rdm.deployment.v1.DeploymentRollbackAbandoned":
      skipUnfinished(deployment);
      Object.assign(deployment, { state: DeploymentState.FAILED, reason: event.reason, rollbackAbandoned: true });
      break;
    case "rdm.deployment.v1.DeploymentCancelled":
      skipUnfinished(deployment);
      Object.assign(deployment, { state: DeploymentState.CANCELLED, paused: false, reason: event.reason });
      break;
    default:
      applyStepEvent(deployment, event, at);
  }
}

const PLANNED = "rdm.deployment.v1.DeploymentPlanned";

function planned(event: DeploymentPlanned): DeploymentAggregateState {
  const at = event.metadata?.occurredAt;
  const deployment = create(DeploymentSchema, {
    deploymentId: event.deploymentId,
    releaseId: event.releaseId,
    environment: event.environment,
    artifacts: event.artifacts,
    ...(event.strategy ? { strategy: event.strategy } : {}),
    ...(event.window ? { window: event.window } : {}),
    linkedChangeIds: event.linkedChangeIds,
    state: event.requiredApprovals > 0 ? DeploymentState.AWAITING_APPROVAL : DeploymentState.PLANNED,
    createdBy: event.metadata?.actor ?? "",
    requiredApprovals: event.requiredApprovals,
    steps: event.steps,
    previousColour: event.previousColour,
    approvalGroup: event.approvalGroup,
    ...(at ? { createdAt: at, updatedAt: at } : {}),
    version: event.metadata?.streamVersion ?? 0n,
  });
  return { deployment };
}

/** One event applied to a deployment the caller owns (a copy of its own). */
function applyTo(deployment: Deployment, event: DeploymentEvent): void {
  const at = event.metadata?.occurredAt;
  applyLifecycleEvent(deployment, event, at);
  if (at) deployment.updatedAt = at;
  deployment.version = event.metadata?.streamVersion ?? deployment.version;
}

/** Deployments fold with one copy per call (see foldCopyingOnce); a plan opens the stream. */
const deploymentFold: CopyOnceFold<DeploymentAggregateState, DeploymentEvent> = {
  start: (event) => (event.$typeName === PLANNED ? planned(event) : undefined),
  exists: (state) => state.deployment !== undefined,
  copy: (state) => ({ deployment: create(DeploymentSchema, structuredClone(state.deployment as Deployment)) }),
  apply: (state, event) => applyTo(state.deployment as Deployment, event),
};

export const evolve = (state: DeploymentAggregateState, event: DeploymentEvent): DeploymentAggregateState =>
  foldCopyingOnce(deploymentFold, [event], state);

/**
 * The deployment after its events, as evolve one after another gives it, copied once instead of
 * once an event (every target report is an event). A rollback's steps are added as copies, since
 * later events change them in place.
 */
export const fold = (events: DeploymentEvent[], state = initialState()): DeploymentAggregateState =>
  foldCopyingOnce(deploymentFold, events, state);

export const isTerminal = (deployment: Deployment) => TERMINAL.has(deployment.state);

export { timestampFromDate };
