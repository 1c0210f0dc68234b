/**
 * A deployment's plan and how far it got, as a pure fold of its events: the strategy expanded into
 * steps, the schedule window, the protection approvals, and each step's and target's state. One
 * handler per event type in a table: a new event type is one more entry.
 */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { instantOf } from "@rdm/proto";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  type DeploymentApprovalGranted,
  type DeploymentCancelled,
  type DeploymentFailed,
  type DeploymentPaused,
  type DeploymentPlanned,
  type DeploymentRollbackAbandoned,
  type DeploymentRollbackStarted,
  type DeploymentRolledBack,
  type DeploymentScheduled,
  type DeploymentStarted,
  type DeploymentStep,
  type DeploymentStepFailed,
  DeploymentStrategyKindSchema,
  type DeploymentSucceeded,
  type DeploymentTargetProgressed,
  file_rdm_deployment_v1_events,
  StepKindSchema,
  StepState,
  StepStateSchema,
  TargetOutcomeSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { enumName } from "../enums.js";

export type PlanStatus =
  | "PLANNED"
  | "AWAITING_APPROVAL"
  | "SCHEDULED"
  | "IN_PROGRESS"
  | "VERIFYING"
  | "ROLLING_BACK"
  | "SUCCEEDED"
  | "FAILED"
  | "ROLLED_BACK"
  | "CANCELLED";

/** A type (not an interface): it fits the route schemas' open objects. */
export type PlannedArtifact = { artifactId: string; name: string; version: string; targetCiIds: string[] };

/** A type (not an interface): it fits the route schemas' open objects. */
export type PlanStep = {
  index: number;
  kind: string;
  label: string;
  targetCiIds: string[];
  state: string;
  /** The stage waits for a DeploymentPromoted after this step (not served: the overview's own). */
  promotionAfter?: boolean;
};

export type DeploymentPlan = {
  deploymentId: string;
  releaseId: string;
  environment: string;
  status: PlanStatus;
  strategy: string;
  /** The package as planned (plans stored before it was kept have none). */
  artifacts?: PlannedArtifact[];
  window: { start: string | null; end: string | null } | null;
  linkedChangeIds: string[];
  /**
   * The changes its start checked (DeploymentScheduled), from its begin those of them its release
   * still listed (DeploymentStarted): it implements them too; none before it starts.
   */
  changeRequestIds?: string[];
  /** The freeze windows its start overrode (DeploymentScheduled); plans stored before: absent. */
  overriddenFreezeWindowIds?: string[];
  requiredApprovals: number;
  approvalGroup: string;
  approvals: { approver: string; comment: string; at: string }[];
  steps: PlanStep[];
  /** Per target: the newest outcome an executor reported (IN_PROGRESS, SUCCEEDED, FAILED). */
  targets: Record<string, string>;
  rollback: {
    reason: string;
    automatic: boolean;
    fast: boolean;
    /** Given up (DeploymentRollbackAbandoned): the targets it did not restore (plans stored before: absent). */
    abandoned?: { reason: string; unrestoredTargetCiIds: string[] };
  } | null;
  reason: string;
  plannedAt: string | null;
  /** Held by DeploymentPaused until DeploymentResumed; the status stays what it was. */
  paused?: boolean;
  /** A completed stage waits for DeploymentPromoted; the next step is not queued until then. */
  awaitingPromotion?: boolean;
};

/** Every message of the deployment topic that names a deployment (environments do not). */
export const DEPLOYMENT_PLAN_EVENT_TYPES = file_rdm_deployment_v1_events.messages.filter((m) =>
  m.fields.some((f) => f.localName === "deploymentId"),
);

interface Context {
  at: Date;
}
type Handler<M> = (plan: DeploymentPlan, message: M, context: Context) => DeploymentPlan;

const iso = (t: Timestamp | undefined) => (t ? instantOf(t).toISOString() : null);
const windowOf = (w: TimeWindow | undefined) => (w ? { start: iso(w.start), end: iso(w.end) } : null);
const stepOf = (s: DeploymentStep): PlanStep => ({
  index: s.index,
  kind: enumName(StepKindSchema, s.kind),
  label: s.label,
  targetCiIds: [...s.targetCiIds],
  state: enumName(StepStateSchema, s.state || StepState.PENDING),
  // As the deployment service: a rollback step never waits for a promotion.
  ...(s.promotionAfter && !s.rollback && { promotionAfter: true }),
});
/** The next step not yet run after `index` is queued, as the deployment service's readyNext. */
const readyAfter = (plan: DeploymentPlan, index: number): DeploymentPlan => {
  const next = plan.steps.find((s) => s.index > index && s.state === "PENDING");
  return next ? withStep(plan, next.index, "READY") : plan;
};
const withStep = (plan: DeploymentPlan, index: number, state: string): DeploymentPlan => ({
  ...plan,
  steps: plan.steps.map((s) => (s.index === index ? { ...s, state } : s)),
});
/**
 * Steps that had not finished are dropped by a rollback or a cancellation, a claimed one too (its
 * executor's report is refused from then on), as the deployment service's own state has it.
 */
const skipOpenSteps = (steps: PlanStep[]) =>
  steps.map((s) => (s.state === "COMPLETED" || s.state === "FAILED" ? s : { ...s, state: "SKIPPED" }));

/** The first event of a deployment that has no plan yet (a deployment service that publishes only outcomes). */
export function emptyPlan(message: { deploymentId: string; releaseId?: string; environment?: string }): DeploymentPlan {
  return {
    deploymentId: message.deploymentId,
    releaseId: message.releaseId ?? "",
    environment: message.environment ?? "",
    status: "PLANNED",
    strategy: "",
    window: null,
    linkedChangeIds: [],
    requiredApprovals: 0,
    approvalGroup: "",
    approvals: [],
    steps: [],
    targets: {},
    rollback: null,
    reason: "",
    plannedAt: null,
  };
}

/** Statuses in which a claimed step sets the status by its kind (a rollback's steps do not). */
const STEPPING: PlanStatus[] = ["SCHEDULED", "IN_PROGRESS", "VERIFYING"];

const HANDLERS: Record<string, Handler<never>> = {
  "rdm.deployment.v1.DeploymentPlanned": ((plan, m: DeploymentPlanned, { at }) => ({
    ...plan,
    releaseId: m.releaseId,
    environment: m.environment,
    status: m.requiredApprovals > 0 ? "AWAITING_APPROVAL" : "PLANNED",
    strategy: enumName(DeploymentStrategyKindSchema, m.strategy?.kind ?? 0),
    artifacts: m.artifacts.map((a) => ({
      artifactId: a.artifactId,
      name: a.name,
      version: a.version,
      targetCiIds: [...a.targetCiIds],
    })),
    window: windowOf(m.window),
    linkedChangeIds: [...m.linkedChangeIds],
    requiredApprovals: m.requiredApprovals,
    approvalGroup: m.approvalGroup,
    steps: m.steps.map(stepOf),
    plannedAt: at.toISOString(),
  })) satisfies Handler<DeploymentPlanned>,
  "rdm.deployment.v1.DeploymentApprovalGranted": ((plan, m: DeploymentApprovalGranted, { at }) => ({
    ...plan,
    status: m.quorumReached && plan.status === "AWAITING_APPROVAL" ? "PLANNED" : plan.status,
    approvals: [...plan.approvals, { approver: m.approver, comment: m.comment, at: at.toISOString() }],
  })) satisfies Handler<DeploymentApprovalGranted>,
  "rdm.deployment.v1.DeploymentScheduled": ((plan, m: DeploymentScheduled) => ({
    ...plan,
    status: "SCHEDULED",
    changeRequestIds: [...m.changeRequestIds],
    overriddenFreezeWindowIds: [...m.overriddenFreezeWindowIds],
    steps: plan.steps.map((s, i) => (i === 0 && s.state === "PENDING" ? { ...s, state: "READY" } : s)),
  })) satisfies Handler<DeploymentScheduled>,
  "rdm.deployment.v1.DeploymentStarted": ((plan, m: DeploymentStarted) => ({
    ...plan,
    releaseId: plan.releaseId || m.releaseId,
    environment: plan.environment || m.environment,
    strategy: plan.strategy || m.strategy,
    status: plan.status === "ROLLING_BACK" ? plan.status : "IN_PROGRESS",
    // Those of its start's changes its release still listed as it began (the deployment service's).
    changeRequestIds: [...m.changeRequestIds],
  })) satisfies Handler<DeploymentStarted>,
  // As the deployment service: VERIFYING while a verification runs, IN_PROGRESS for other steps.
  "rdm.deployment.v1.DeploymentStepClaimed": ((plan, m: { stepIndex: number }) => ({
    ...withStep(plan, m.stepIndex, "CLAIMED"),
    status: STEPPING.includes(plan.status)
      ? plan.steps.find((s) => s.index === m.stepIndex)?.kind === "VERIFY"
        ? "VERIFYING"
        : "IN_PROGRESS"
      : plan.status,
  })) satisfies Handler<{ stepIndex: number }>,
  "rdm.deployment.v1.DeploymentStepReleased": ((plan, m: { stepIndex: number }) =>
    withStep(plan, m.stepIndex, "READY")) satisfies Handler<{ stepIndex: number }>,
  "rdm.deployment.v1.DeploymentStepLeaseExpired": ((plan, m: { stepIndex: number }) =>
    withStep(plan, m.stepIndex, "READY")) satisfies Handler<{ stepIndex: number }>,
  "rdm.deployment.v1.DeploymentStepCompleted": ((plan, m: { stepIndex: number }) => {
    const done = withStep(plan, m.stepIndex, "COMPLETED");
    // The next step is queued (after its pause, shown as READY), unless the stage waits for a
    // promotion: then it is queued by DeploymentPromoted.
    if (plan.steps.find((s) => s.index === m.stepIndex)?.promotionAfter) return { ...done, awaitingPromotion: true };
    return readyAfter(done, m.stepIndex);
  }) satisfies Handler<{ stepIndex: number }>,
  "rdm.deployment.v1.DeploymentPromoted": ((plan) => {
    const done = plan.steps.filter((s) => s.state === "COMPLETED").at(-1);
    return { ...readyAfter(plan, done?.index ?? -1), awaitingPromotion: false };
  }) satisfies Handler<unknown>,
  // A failed rollback step is queued again (at retry_at): the baseline must be restored.
  "rdm.deployment.v1.DeploymentStepFailed": ((plan, m: DeploymentStepFailed) =>
    withStep(plan, m.stepIndex, m.retryAt ? "READY" : "FAILED")) satisfies Handler<DeploymentStepFailed>,
  "rdm.deployment.v1.DeploymentTargetProgressed": ((plan, m: DeploymentTargetProgressed) => ({
    ...plan,
    targets: { ...plan.targets, [m.ciId]: enumName(TargetOutcomeSchema, m.outcome) },
  })) satisfies Handler<DeploymentTargetProgressed>,
  "rdm.deployment.v1.DeploymentPaused": ((plan, m: DeploymentPaused) => ({
    ...plan,
    paused: true,
    reason: m.reason,
  })) satisfies Handler<DeploymentPaused>,
  "rdm.deployment.v1.DeploymentResumed": ((plan) => ({
    ...plan,
    paused: false,
    reason: "",
  })) satisfies Handler<unknown>,
  "rdm.deployment.v1.DeploymentRollbackStarted": ((plan, m: DeploymentRollbackStarted) => ({
    ...plan,
    status: "ROLLING_BACK",
    paused: false,
    awaitingPromotion: false,
    reason: m.reason,
    rollback: { reason: m.reason, automatic: m.automatic, fast: m.fast },
    // Its first step is queued at once.
    steps: [
      ...skipOpenSteps(plan.steps),
      ...m.steps.map((s, i) => ({ ...stepOf(s), ...(i === 0 && { state: "READY" }) })),
    ],
  })) satisfies Handler<DeploymentRollbackStarted>,
  // Failed again, the environment left as the failure left the targets not restored.
  "rdm.deployment.v1.DeploymentRollbackAbandoned": ((plan, m: DeploymentRollbackAbandoned) => ({
    ...plan,
    status: "FAILED",
    reason: m.reason,
    rollback: plan.rollback && {
      ...plan.rollback,
      abandoned: { reason: m.reason, unrestoredTargetCiIds: m.unrestoredTargetCiIds },
    },
    steps: skipOpenSteps(plan.steps),
  })) satisfies Handler<DeploymentRollbackAbandoned>,
  "rdm.deployment.v1.DeploymentCancelled": ((plan, m: DeploymentCancelled) => ({
    ...plan,
    status: "CANCELLED",
    paused: false,
    reason: m.reason,
    steps: skipOpenSteps(plan.steps),
  })) satisfies Handler<DeploymentCancelled>,
  // An ended deployment is on hold no more, as the deployment service has it.
  "rdm.deployment.v1.DeploymentSucceeded": ((plan, _m: DeploymentSucceeded) => ({
    ...plan,
    status: "SUCCEEDED",
    paused: false,
    reason: "",
  })) satisfies Handler<DeploymentSucceeded>,
  // The step the failure came in failed, as the deployment service has it.
  "rdm.deployment.v1.DeploymentFailed": ((plan, m: DeploymentFailed) => ({
    ...plan,
    // Recorded as a rollback is given up, it fails no step: the abandonment skips those not run.
    steps:
      plan.status === "ROLLING_BACK"
        ? plan.steps
        : plan.steps.map((s) => (s.state === "CLAIMED" ? { ...s, state: "FAILED" } : s)),
    status: plan.status === "ROLLING_BACK" ? plan.status : "FAILED",
    paused: false,
    reason: m.reason,
  })) satisfies Handler<DeploymentFailed>,
  "rdm.deployment.v1.DeploymentRolledBack": ((plan, m: DeploymentRolledBack) => ({
    ...plan,
    status: "ROLLED_BACK",
    paused: false,
    reason: m.reason || plan.reason,
    steps: skipOpenSteps(plan.steps),
  })) satisfies Handler<DeploymentRolledBack>,
};

/** One event on top of the plan (undefined: none yet). Types without a handler change nothing. */
export function evolvePlan(
  plan: DeploymentPlan | undefined,
  message: { $typeName: string; deploymentId: string; releaseId?: string; environment?: string },
  at: Date,
): DeploymentPlan {
  const current = plan ?? emptyPlan(message);
  const handler = HANDLERS[message.$typeName] as Handler<typeof message> | undefined;
  return handler ? handler(current, message, { at }) : current;
}

/** How far the strategy got: deploy steps done of all, the step in flight, targets by outcome. */
export function progressOf(plan: DeploymentPlan) {
  const deploySteps = plan.steps.filter((s) => s.kind === "DEPLOY");
  const outcomes = Object.values(plan.targets);
  const current = plan.steps.find((s) => s.state === "CLAIMED" || s.state === "READY");
  return {
    stepsTotal: plan.steps.length,
    stepsCompleted: plan.steps.filter((s) => s.state === "COMPLETED").length,
    stepsFailed: plan.steps.filter((s) => s.state === "FAILED").length,
    deployStepsTotal: deploySteps.length,
    deployStepsCompleted: deploySteps.filter((s) => s.state === "COMPLETED").length,
    currentStep: current ? { index: current.index, kind: current.kind, label: current.label } : null,
    targetsSucceeded: outcomes.filter((o) => o === "SUCCEEDED").length,
    targetsFailed: outcomes.filter((o) => o === "FAILED").length,
  };
}
