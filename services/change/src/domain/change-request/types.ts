import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { ChangeRequestEvent } from "@rdm/domain-kernel/change";
import type {
  ChangeImpact,
  ChangeRequest,
  ChangeReviewOutcome,
  ChangeType,
  ChangeUrgency,
  FreezeWindow,
  StandardChangeTemplate,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";

export type { ChangeRequestEvent };

export interface ChangeRequestState {
  /** Undefined until the change is raised. */
  change: ChangeRequest | undefined;
  /**
   * Its release has the link too: the link came from the release, or the release mirrored the one
   * named at RaiseChange. Until then (a release unknown or closed never does) another release's
   * link replaces it.
   */
  releaseLinkConfirmed?: boolean;
  /**
   * Per release, the stream version of its newest link or unlink event mirrored here: an older
   * or the same one again (a replay through a new consumer group) changes nothing.
   */
  releaseEventVersions?: ReadonlyMap<string, bigint>;
}

/** The fields a requester writes, and may edit while the change is a DRAFT. */
export interface ChangeDetails {
  title: string;
  description: string;
  justification: string;
  affectedCiIds: string[];
  environments: string[];
  implementationPlan: string;
  testPlan: string;
  backoutPlan: string;
  impact: ChangeImpact;
  urgency: ChangeUrgency;
  plannedWindow: TimeWindow | undefined;
  /** The earliest commit of the work the change ships (checked against the clock by the caller). */
  firstCommitTime: Timestamp | undefined;
}

export interface RaiseChange extends ChangeDetails {
  kind: "raiseChange";
  changeRequestId: string;
  key: string;
  requester: string;
  type: ChangeType;
  linkedReleaseId: string;
  /** The catalog entry of a STANDARD change, loaded by the caller (undefined if not found). */
  template?: StandardChangeTemplate | undefined;
  templateId: string;
}

/** Replaces every editable field of a DRAFT change. */
export interface UpdateChange extends ChangeDetails {
  kind: "updateChange";
}

export interface SubmitChange {
  kind: "submitChange";
  actor: string;
  /** A standard change's template as it is now (undefined: not in the catalog). */
  template?: StandardChangeTemplate | undefined;
}

export interface AssessChange {
  kind: "assessChange";
  impact: ChangeImpact;
  urgency: ChangeUrgency;
  /** 0: the default quorum for the board and risk. */
  requiredApprovals: number;
  notes: string;
}

/** The token group whose members sit on each voting board (CHANGE_CAB_GROUP, CHANGE_ECAB_GROUP). */
export interface BoardGroups {
  cab: string;
  ecab: string;
}

export const DEFAULT_BOARD_GROUPS: Readonly<BoardGroups> = { cab: "cab", ecab: "ecab" };

/** A vote's caller: who votes, the groups of their token, and which group each board is. */
export interface Vote {
  approver: string;
  approverGroups: readonly string[];
  boardGroups: Readonly<BoardGroups>;
}

export interface ApproveChange extends Vote {
  kind: "approveChange";
  comment: string;
}

export interface RejectChange extends Vote {
  kind: "rejectChange";
  reason: string;
}

export interface ScheduleChange {
  kind: "scheduleChange";
  window: TimeWindow;
  /** Refuse instead of reporting collisions. */
  strict: boolean;
  freezeOverrideJustification: string;
  /** Freeze windows that may overlap the window (the decider picks the applicable ones). */
  freezes: readonly FreezeWindow[];
  /** Other changes that may be booked in overlapping windows (the decider picks the colliding ones). */
  otherChanges: readonly ChangeRequest[];
}

export interface StartImplementation {
  kind: "startImplementation";
  deploymentId?: string;
  environment?: string;
}

export interface CompleteImplementation {
  kind: "completeImplementation";
  deploymentId?: string;
  environment?: string;
  /**
   * The deployment's environment is production: its success implements the change unless other
   * production environments it names remain (a release's deployments end in production, so the
   * others named never come).
   */
  production?: boolean;
  /** The environments production when it succeeded (the deployment event's); empty: unknown, none awaited. */
  productionEnvironments?: readonly string[];
  /**
   * A deployment's success (the reaction): with tasks open, the change awaits them instead of
   * the completion being refused, and the last one's completion completes it.
   */
  awaitOpenTasks?: boolean;
}

export interface FailImplementation {
  kind: "failImplementation";
  reason: string;
  deploymentId?: string;
  environment?: string;
}

export interface ReviewChange {
  kind: "reviewChange";
  outcome: ChangeReviewOutcome;
  notes: string;
}

export interface CloseChange {
  kind: "closeChange";
}

/** Withdraws a change before implementation: its requester, or a change manager. */
export interface CancelChange {
  kind: "cancelChange";
  reason: string;
  actor: string;
  /** The caller holds the change-manager role. */
  byChangeManager: boolean;
}

export interface AddTask {
  kind: "addTask";
  taskId: string;
  title: string;
  assignee: string;
}

export interface CompleteTask {
  kind: "completeTask";
  taskId: string;
  by: string;
}

/** The release service linked the change to a release (or unlinked it). */
export interface LinkRelease {
  kind: "linkRelease";
  releaseId: string;
  /** The release event's stream version (0: unknown, mirrored whatever came before). */
  releaseEventVersion?: bigint;
}

export interface UnlinkRelease {
  kind: "unlinkRelease";
  releaseId: string;
  releaseEventVersion?: bigint;
}

export type ChangeRequestCommand =
  | RaiseChange
  | UpdateChange
  | SubmitChange
  | AssessChange
  | ApproveChange
  | RejectChange
  | ScheduleChange
  | StartImplementation
  | CompleteImplementation
  | FailImplementation
  | ReviewChange
  | CloseChange
  | CancelChange
  | AddTask
  | CompleteTask
  | LinkRelease
  | UnlinkRelease;
