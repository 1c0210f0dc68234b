import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { DecisionContext } from "@rdm/command-handler";
// The events, the state and the linked-change view are the shared kernel's: the fold over them
// is a kernel rule the gateway applies too.
import type { LinkedChangeState, ReleaseEvent, ReleaseState } from "@rdm/domain-kernel/release";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type { ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import type {
  DeploymentOutcome,
  LogEntryKind,
  PackageArtifact,
  ReleasePhase,
  ReleaseType,
  ReviewOutcome,
  RiskLevel,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";

export type { LinkedChangeState, ReleaseEvent, ReleaseState };

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
  /** The DML artifact ids it deployed (a success only). */
  artifactIds?: string[];
  /** The environments the deployment service took as production (a success only; unset in older events). */
  productionEnvironments?: string[];
  /** The release's linked change requests and their states now, for the gate a production success passes. */
  changes?: LinkedChangeState[];
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
  /** `dueAt` as the request gave it, to the nanosecond. */
  | { kind: "addTask"; taskId: string; name: string; required: boolean; assignee: string; dueAt: Timestamp | undefined }
  | { kind: "assignTask"; taskId: string; assignee: string }
  | { kind: "startTask"; taskId: string }
  | { kind: "completeTask"; taskId: string }
  | { kind: "cancelTask"; taskId: string; reason: string }
  | {
      kind: "linkChangeRequest";
      changeRequestId: string;
      /** The release the change is linked to as this service has heard ("" or unset: none, or not heard of). */
      changeLinkedTo?: string;
      /** The change's state as this service has heard (a ChangeState name; unset: not heard of). */
      changeState?: string | undefined;
      /** Mirrors the change service's word: a link already there is a no-op, not a refusal. */
      mirror?: boolean;
      /**
       * Says a link already there again, for the change service (ReleaseChangeRequestLinked.relinked);
       * a no-op when the release no longer lists the change.
       */
      relink?: boolean;
    }
  | {
      kind: "unlinkChangeRequest";
      changeRequestId: string;
      /** The change's state as this service has heard (a ChangeState name; unset: not heard of). */
      changeState?: string | undefined;
      /** Mirrors the change service's word: a link not there is a no-op, not a refusal. */
      mirror?: boolean;
      /** Why the change service's word unlinks it (ReleaseChangeRequestUnlinked.reason). */
      reason?: string;
      /**
       * The linked changes' states now, for a release in DEPLOYMENT the change may have held
       * (unset: the release is not in DEPLOYMENT, nothing to re-check).
       */
      changes?: LinkedChangeState[];
    }
  | { kind: "attachArtifact"; artifact: Omit<PackageArtifact, "$typeName" | "$unknown"> }
  | { kind: "detachArtifact"; artifactId: string }
  | { kind: "setBackOutPlan"; backOutPlan: string }
  | { kind: "recordLogEntry"; entryId: string; entryKind: LogEntryKind; text: string }
  | { kind: "recordReview"; outcome: ReviewOutcome; lessonsLearned: string; followUpActions: string[] }
  | { kind: "markDeadlineMissed"; phaseEntry: number }
  | { kind: "escalateDeadline"; phaseEntry: number }
  | { kind: "markTaskOverdue"; taskId: string }
  | { kind: "recordDeploymentOutcome"; deployment: DeploymentOutcomeReport }
  /** The release's linked change requests and their states now (one of them changed). */
  | { kind: "moveOnAfterProduction"; changes: LinkedChangeState[] };

/** Who decides and when: the decider reads the clock and ids only through this. */
export type { DecisionContext };

/** The command of kind `K`. */
export type ReleaseCommandOf<K extends ReleaseCommand["kind"]> = Extract<ReleaseCommand, { kind: K }>;
