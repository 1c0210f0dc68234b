import type { DecisionContext } from "@rdm/command-handler";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type { ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import type {
  DeploymentOutcome,
  LogEntryKind,
  PackageArtifact,
  Release,
  ReleasePhase,
  ReleaseType,
  ReviewOutcome,
  RiskLevel,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";

/** Events of the release aggregate, as protobuf messages (their $typeName is the CloudEvents type). */
export type ReleaseEvent =
  | ev.ReleaseRegistered
  | ev.ReleasePlanningUpdated
  | ev.ReleasePhaseAdvanced
  | ev.ReleasePhaseReworked
  | ev.ReleaseAbandoned
  | ev.ReleaseClosed
  | ev.ReleaseApprovalRequested
  | ev.ReleaseApprovalGranted
  | ev.ReleaseApprovalRejected
  | ev.ReleaseTaskAdded
  | ev.ReleaseTaskAssigned
  | ev.ReleaseTaskStarted
  | ev.ReleaseTaskCompleted
  | ev.ReleaseTaskCancelled
  | ev.ReleaseChangeRequestLinked
  | ev.ReleaseChangeRequestUnlinked
  | ev.ReleaseArtifactAttached
  | ev.ReleaseArtifactDetached
  | ev.ReleasePackageFrozen
  | ev.ReleaseBackOutPlanSet
  | ev.ReleaseLogEntryRecorded
  | ev.ReleaseReviewRecorded
  | ev.ReleaseDeadlineMissed
  | ev.ReleaseDeadlineEscalated
  | ev.ReleaseNotificationRequested
  | ev.ReleaseTaskOverdue
  | ev.ReleaseDeploymentRecorded
  | ev.ReleaseDeviationRecorded;

export interface ReleaseState {
  /** Undefined until the release is registered. */
  release: Release | undefined;
  /** The model version pinned at registration. */
  model: ReleaseModel | undefined;
}

interface PlanningFields {
  title: string;
  description: string;
  category: string;
  coordinator: string;
  stakeholders: string[];
  risk: RiskLevel;
  plannedWindow: TimeWindow | undefined;
}

export interface RegisterRelease extends PlanningFields {
  kind: "registerRelease";
  releaseId: string;
  key: string;
  type: ReleaseType;
  owner: string;
  model: ReleaseModel;
}

/** The state of a change request as the release service last heard of it (local read model). */
export interface LinkedChangeState {
  changeRequestId: string;
  /** Change state name without prefix, e.g. "AUTHORIZED"; undefined when no event was seen. */
  state: string | undefined;
}

/** A deployment outcome as the deployment service reported it (rdm.deployment.events.v1). */
export interface DeploymentOutcomeReport {
  deploymentId: string;
  environment: string;
  outcome: DeploymentOutcome;
  /** The environment is the last of the promotion order. */
  production: boolean;
  reason: string;
  /** When the deployment service recorded it; the decision time when unknown. */
  occurredAt?: Date | undefined;
}

export type ReleaseCommand =
  | RegisterRelease
  | ({ kind: "updatePlanning" } & PlanningFields)
  | { kind: "advancePhase"; fromPhase: ReleasePhase; changes: LinkedChangeState[] }
  | { kind: "reworkRelease"; toPhase: ReleasePhase; reason: string }
  | { kind: "abandonRelease"; reason: string }
  | { kind: "closeRelease"; changes: LinkedChangeState[] }
  | { kind: "requestApproval"; approvalId: string; approverGroup: string }
  | { kind: "approveRelease"; approvalId: string; comment: string }
  | { kind: "rejectRelease"; approvalId: string; reason: string }
  | { kind: "addTask"; taskId: string; name: string; required: boolean; assignee: string; dueAt: Date | undefined }
  | { kind: "assignTask"; taskId: string; assignee: string }
  | { kind: "startTask"; taskId: string }
  | { kind: "completeTask"; taskId: string }
  | { kind: "cancelTask"; taskId: string; reason: string }
  | { kind: "linkChangeRequest"; changeRequestId: string }
  | { kind: "unlinkChangeRequest"; changeRequestId: string }
  | { kind: "attachArtifact"; artifact: Omit<PackageArtifact, "$typeName" | "$unknown"> }
  | { kind: "detachArtifact"; artifactId: string }
  | { kind: "setBackOutPlan"; backOutPlan: string }
  | { kind: "recordLogEntry"; entryId: string; entryKind: LogEntryKind; text: string }
  | { kind: "recordReview"; outcome: ReviewOutcome; lessonsLearned: string; followUpActions: string[] }
  | { kind: "markDeadlineMissed"; phaseEntry: number }
  | { kind: "escalateDeadline"; phaseEntry: number }
  | { kind: "markTaskOverdue"; taskId: string }
  | { kind: "recordDeploymentOutcome"; deployment: DeploymentOutcomeReport };

/** Who decides and when: the decider reads the clock and ids only through this. */
export type { DecisionContext };

/** The command of kind `K`. */
export type ReleaseCommandOf<K extends ReleaseCommand["kind"]> = Extract<ReleaseCommand, { kind: K }>;
