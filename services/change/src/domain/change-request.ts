import { create } from "@bufbuild/protobuf";
import type { RuleCondition } from "@rdm/command-handler";
import {
  ApprovalDecision,
  ChangeApprovalSchema,
  ChangeBoard,
  type ChangeImpact,
  type ChangeRequest,
  ChangeRequestSchema,
  type ChangeReviewOutcome,
  ChangeState,
  ChangeTaskSchema,
  ChangeTaskState,
  ChangeType,
  type ChangeUrgency,
  type FreezeWindow,
  type StandardChangeTemplate,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  type ChangeApprovalRecorded,
  ChangeApprovalRecordedSchema,
  type ChangeImplementationStarted,
  ChangeImplementationStartedSchema,
  type ChangeRequestAssessed,
  ChangeRequestAssessedSchema,
  type ChangeRequestAuthorized,
  ChangeRequestAuthorizedSchema,
  type ChangeRequestClosed,
  ChangeRequestClosedSchema,
  type ChangeRequestDetailsUpdated,
  ChangeRequestDetailsUpdatedSchema,
  type ChangeRequestFailed,
  ChangeRequestFailedSchema,
  type ChangeRequestImplemented,
  ChangeRequestImplementedSchema,
  type ChangeRequestRaised,
  ChangeRequestRaisedSchema,
  type ChangeRequestRejected,
  ChangeRequestRejectedSchema,
  type ChangeRequestReleaseLinked,
  ChangeRequestReleaseLinkedSchema,
  type ChangeRequestReleaseUnlinked,
  ChangeRequestReleaseUnlinkedSchema,
  type ChangeRequestReviewed,
  ChangeRequestReviewedSchema,
  type ChangeRequestScheduled,
  ChangeRequestScheduledSchema,
  type ChangeRequestSubmitted,
  ChangeRequestSubmittedSchema,
  type ChangeTaskAdded,
  ChangeTaskAddedSchema,
  type ChangeTaskCompleted,
  ChangeTaskCompletedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { applicableFreezes, collisionsWith, toInterval } from "./calendar.js";
import { boardFor, defaultQuorum, riskOf } from "./risk.js";
import { changeRuleViolation } from "./rule-violation.js";

/** Events of the change request aggregate, as protobuf messages ($typeName is the CloudEvents type). */
export type ChangeRequestEvent =
  | ChangeRequestRaised
  | ChangeRequestDetailsUpdated
  | ChangeRequestSubmitted
  | ChangeRequestAssessed
  | ChangeApprovalRecorded
  | ChangeRequestAuthorized
  | ChangeRequestRejected
  | ChangeRequestScheduled
  | ChangeImplementationStarted
  | ChangeRequestImplemented
  | ChangeRequestFailed
  | ChangeRequestReviewed
  | ChangeRequestClosed
  | ChangeTaskAdded
  | ChangeTaskCompleted
  | ChangeRequestReleaseLinked
  | ChangeRequestReleaseUnlinked;

export interface ChangeRequestState {
  /** Undefined until the change is raised. */
  change: ChangeRequest | undefined;
}

export const initialState = (): ChangeRequestState => ({ change: undefined });

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
interface Vote {
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
}

export interface UnlinkRelease {
  kind: "unlinkRelease";
  releaseId: string;
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
  | AddTask
  | CompleteTask
  | LinkRelease
  | UnlinkRelease;

const stateName = (state: ChangeState) => ChangeState[state] ?? String(state);

function requireChange(state: ChangeRequestState): ChangeRequest {
  if (!state.change) throw changeRuleViolation("NOT_FOUND", "change.exists", "change request not found");
  return state.change;
}

/** Refuses unless the change is in one of `allowed`; the rule says which transition was attempted. */
function requireState(change: ChangeRequest, action: string, allowed: readonly ChangeState[]): void {
  if (allowed.includes(change.state)) return;
  throw changeRuleViolation(
    "FAILED_PRECONDITION",
    `change.${action}.state`,
    `cannot ${action.replaceAll("_", " ")} change ${change.key} in state ${stateName(change.state)}; allowed in ${allowed.map(stateName).join(", ")}`,
  );
}

/**
 * The `approver` role lets a caller vote at all; sitting on this change's board is the token's
 * group (the identity provider's list of CAB/ECAB members), checked per change.
 */
function requireBoardMember(change: ChangeRequest, vote: Vote): void {
  const group =
    change.board === ChangeBoard.CAB
      ? vote.boardGroups.cab
      : change.board === ChangeBoard.ECAB
        ? vote.boardGroups.ecab
        : undefined;
  if (group === undefined) {
    // Standard changes are authorized by their template: no board votes on them.
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.approval.board",
      `change ${change.key} is ${ChangeBoard[change.board]}; no board votes on it`,
    );
  }
  if (vote.approverGroups.includes(group)) return;
  const description = `${vote.approver} is not in group "${group}" (${ChangeBoard[change.board]}) and cannot vote on change ${change.key}`;
  throw changeRuleViolation("PERMISSION_DENIED", "change.approval.board_member", description, [
    { rule: "change.approval.board_member", subject: group, description },
  ]);
}

/** Fields every change event carries: its id, the linked release and the state after it. */
const envelope = (change: ChangeRequest, state: ChangeState) => ({
  changeRequestId: change.changeRequestId,
  linkedReleaseId: change.linkedReleaseId,
  state,
});

const openTasks = (change: ChangeRequest) => change.tasks.filter((task) => task.state === ChangeTaskState.OPEN);

const TERMINAL: readonly ChangeState[] = [ChangeState.CLOSED, ChangeState.REJECTED];

export function decide(command: ChangeRequestCommand, state: ChangeRequestState): ChangeRequestEvent[] {
  if (command.kind === "raiseChange") return raise(command, state);
  const change = requireChange(state);
  switch (command.kind) {
    case "updateChange":
      return update(change, command);
    case "submitChange":
      return submit(change);
    case "assessChange": {
      requireState(change, "assess", [ChangeState.SUBMITTED]);
      const risk = riskOf(command.impact, command.urgency);
      const board = boardFor(change.type);
      return [
        create(ChangeRequestAssessedSchema, {
          ...envelope(change, ChangeState.ASSESSED),
          impact: command.impact,
          urgency: command.urgency,
          risk,
          board,
          requiredApprovals: command.requiredApprovals || defaultQuorum(board, risk),
          notes: command.notes,
        }),
      ];
    }
    case "approveChange":
    case "rejectChange": {
      requireState(change, command.kind === "approveChange" ? "approve" : "reject", [ChangeState.ASSESSED]);
      requireBoardMember(change, command);
      if (command.approver === change.requester) {
        // Who may act, not what state the change is in: PERMISSION_DENIED, as in the release service.
        throw changeRuleViolation(
          "PERMISSION_DENIED",
          "change.approval.separation_of_duties",
          `${command.approver} requested change ${change.key} and cannot approve or reject it`,
        );
      }
      if (change.approvals.some((approval) => approval.approver === command.approver)) {
        throw changeRuleViolation(
          "FAILED_PRECONDITION",
          "change.approval.one_vote_per_member",
          `${command.approver} has already voted on change ${change.key}`,
        );
      }
      if (command.kind === "rejectChange") {
        return [
          create(ChangeApprovalRecordedSchema, {
            ...envelope(change, ChangeState.ASSESSED),
            approver: command.approver,
            decision: ApprovalDecision.REJECTED,
            comment: command.reason,
            board: change.board,
          }),
          create(ChangeRequestRejectedSchema, {
            ...envelope(change, ChangeState.REJECTED),
            board: change.board,
            rejectedBy: command.approver,
            reason: command.reason,
          }),
        ];
      }
      const recorded = create(ChangeApprovalRecordedSchema, {
        ...envelope(change, ChangeState.ASSESSED),
        approver: command.approver,
        decision: ApprovalDecision.APPROVED,
        comment: command.comment,
        board: change.board,
      });
      const approvers = [
        ...change.approvals.filter((a) => a.decision === ApprovalDecision.APPROVED).map((a) => a.approver),
        command.approver,
      ];
      if (approvers.length < change.requiredApprovals) return [recorded];
      return [
        recorded,
        create(ChangeRequestAuthorizedSchema, {
          ...envelope(change, ChangeState.AUTHORIZED),
          board: change.board,
          approvers,
        }),
      ];
    }
    case "scheduleChange":
      return schedule(change, command);
    case "startImplementation":
      requireState(change, "start_implementation", [ChangeState.SCHEDULED]);
      return [
        create(ChangeImplementationStartedSchema, {
          ...envelope(change, ChangeState.IMPLEMENTING),
          deploymentId: command.deploymentId ?? "",
          environment: command.environment ?? "",
        }),
      ];
    case "completeImplementation": {
      requireState(change, "complete_implementation", [ChangeState.IMPLEMENTING]);
      const open = openTasks(change);
      if (open.length > 0) {
        throw changeRuleViolation(
          "FAILED_PRECONDITION",
          "change.complete_implementation.tasks_done",
          `change ${change.key} has ${open.length} open task(s)`,
          open.map((task) => ({
            rule: "change.complete_implementation.tasks_done",
            subject: task.taskId,
            description: `task "${task.title}" is still open`,
          })),
        );
      }
      return [
        create(ChangeRequestImplementedSchema, {
          ...envelope(change, ChangeState.IMPLEMENTED),
          deploymentId: command.deploymentId ?? "",
          environment: command.environment ?? "",
        }),
      ];
    }
    case "failImplementation":
      // A deployment of the linked release may fail before anyone marked the change started.
      requireState(change, "fail", [ChangeState.SCHEDULED, ChangeState.IMPLEMENTING]);
      return [
        create(ChangeRequestFailedSchema, {
          ...envelope(change, ChangeState.FAILED),
          reason: command.reason,
          backoutPlan: change.backoutPlan,
          deploymentId: command.deploymentId ?? "",
          environment: command.environment ?? "",
        }),
      ];
    case "reviewChange":
      requireState(change, "review", [ChangeState.IMPLEMENTED, ChangeState.FAILED]);
      return [
        create(ChangeRequestReviewedSchema, {
          ...envelope(change, ChangeState.REVIEWED),
          outcome: command.outcome,
          notes: command.notes,
        }),
      ];
    case "closeChange":
      requireState(change, "close", [ChangeState.REVIEWED, ChangeState.REJECTED]);
      return [create(ChangeRequestClosedSchema, envelope(change, ChangeState.CLOSED))];
    case "addTask":
      if (TERMINAL.includes(change.state)) {
        throw changeRuleViolation(
          "FAILED_PRECONDITION",
          "change.add_task.state",
          `cannot add a task to change ${change.key} in state ${stateName(change.state)}`,
        );
      }
      if (change.tasks.some((task) => task.taskId === command.taskId)) {
        throw changeRuleViolation("ALREADY_EXISTS", "change.task.unique_id", `task ${command.taskId} exists`);
      }
      return [
        create(ChangeTaskAddedSchema, {
          ...envelope(change, change.state),
          taskId: command.taskId,
          title: command.title,
          assignee: command.assignee,
        }),
      ];
    case "linkRelease":
      // Re-delivered or already known links change nothing.
      if (change.linkedReleaseId === command.releaseId) return [];
      if (change.state === ChangeState.CLOSED) {
        throw changeRuleViolation(
          "FAILED_PRECONDITION",
          "change.link_release.state",
          `cannot link closed change ${change.key} to release ${command.releaseId}`,
        );
      }
      return [
        create(ChangeRequestReleaseLinkedSchema, {
          ...envelope(change, change.state),
          linkedReleaseId: command.releaseId,
          previousReleaseId: change.linkedReleaseId,
        }),
      ];
    case "unlinkRelease":
      if (change.linkedReleaseId !== command.releaseId) return [];
      return [
        create(ChangeRequestReleaseUnlinkedSchema, {
          ...envelope(change, change.state),
          linkedReleaseId: "",
          releaseId: command.releaseId,
        }),
      ];
    case "completeTask": {
      const task = change.tasks.find((t) => t.taskId === command.taskId);
      if (!task) {
        throw changeRuleViolation(
          "NOT_FOUND",
          "change.task.exists",
          `change ${change.key} has no task ${command.taskId}`,
          [],
          "change task",
        );
      }
      if (TERMINAL.includes(change.state)) {
        throw changeRuleViolation(
          "FAILED_PRECONDITION",
          "change.complete_task.state",
          `cannot complete a task of change ${change.key} in state ${stateName(change.state)}`,
        );
      }
      if (task.state !== ChangeTaskState.OPEN) {
        throw changeRuleViolation(
          "FAILED_PRECONDITION",
          "change.complete_task.task_open",
          `task "${task.title}" is ${ChangeTaskState[task.state]}, not OPEN`,
        );
      }
      return [
        create(ChangeTaskCompletedSchema, {
          ...envelope(change, change.state),
          taskId: command.taskId,
          completedBy: command.by,
        }),
      ];
    }
  }
}

function raise(command: RaiseChange, state: ChangeRequestState): ChangeRequestEvent[] {
  if (state.change) {
    throw changeRuleViolation(
      "ALREADY_EXISTS",
      "change.unique_id",
      `change request ${command.changeRequestId} already exists`,
    );
  }
  const { kind: _kind, template, plannedWindow, ...fields } = command;
  let { implementationPlan, testPlan, backoutPlan } = command;
  let risk = riskOf(command.impact, command.urgency);
  if (command.type === ChangeType.STANDARD) {
    if (!template) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "standard_change.template_exists",
        `standard change template ${command.templateId} is not in the catalog`,
      );
    }
    if (template.retired) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "standard_change.template_active",
        `standard change template "${template.name}" is retired`,
      );
    }
    // The template's plans and risk are what was pre-authorized.
    implementationPlan ||= template.implementationPlan;
    testPlan ||= template.testPlan;
    backoutPlan ||= template.backoutPlan;
    risk = template.risk;
  }
  return [
    create(ChangeRequestRaisedSchema, {
      ...fields,
      state: ChangeState.DRAFT,
      implementationPlan,
      testPlan,
      backoutPlan,
      risk,
      ...(plannedWindow ? { plannedWindow } : {}),
    }),
  ];
}

function update(change: ChangeRequest, command: UpdateChange): ChangeRequestEvent[] {
  requireState(change, "update", [ChangeState.DRAFT]);
  const { kind: _kind, plannedWindow, ...fields } = command;
  let risk = riskOf(command.impact, command.urgency);
  if (change.type === ChangeType.STANDARD) {
    // The template's plans and risk are what was pre-authorized: they cannot be edited.
    const edited = (["implementationPlan", "testPlan", "backoutPlan"] as const).filter(
      (plan) => command[plan] !== "" && command[plan] !== change[plan],
    );
    if (edited.length > 0) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "change.update.standard_plans_fixed",
        `the plans of standard change ${change.key} are its template's and cannot be edited (${edited.join(", ")})`,
      );
    }
    fields.implementationPlan = change.implementationPlan;
    fields.testPlan = change.testPlan;
    fields.backoutPlan = change.backoutPlan;
    risk = change.risk;
  }
  return [
    create(ChangeRequestDetailsUpdatedSchema, {
      ...envelope(change, ChangeState.DRAFT),
      ...fields,
      risk,
      ...(plannedWindow ? { plannedWindow } : {}),
    }),
  ];
}

/** What a change needs before it can be submitted for assessment. */
function submissionGaps(change: ChangeRequest): RuleCondition[] {
  const gaps: RuleCondition[] = [];
  const need = (ok: boolean, field: string, description: string) => {
    if (!ok) gaps.push({ rule: `change.submit.${field}_required`, subject: field, description });
  };
  need(
    change.type === ChangeType.STANDARD || change.justification.trim() !== "",
    "justification",
    "a justification is required",
  );
  need(change.affectedCiIds.length > 0, "affected_ci_ids", "at least one affected configuration item is required");
  need(change.implementationPlan.trim() !== "", "implementation_plan", "an implementation plan is required");
  need(change.backoutPlan.trim() !== "", "backout_plan", "a back-out plan is required");
  return gaps;
}

function submit(change: ChangeRequest): ChangeRequestEvent[] {
  requireState(change, "submit", [ChangeState.DRAFT]);
  const gaps = submissionGaps(change);
  if (gaps.length > 0) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.submit.complete",
      `change ${change.key} is incomplete: ${gaps.map((gap) => gap.description).join("; ")}`,
      gaps,
    );
  }
  const submitted = create(ChangeRequestSubmittedSchema, envelope(change, ChangeState.SUBMITTED));
  if (change.type !== ChangeType.STANDARD) return [submitted];
  // A standard change is pre-authorized by its template: no CAB, straight to AUTHORIZED.
  return [
    submitted,
    create(ChangeRequestAssessedSchema, {
      ...envelope(change, ChangeState.ASSESSED),
      impact: change.impact,
      urgency: change.urgency,
      risk: change.risk,
      board: ChangeBoard.PRE_AUTHORIZED,
      requiredApprovals: 0,
      notes: `pre-authorized by standard change template ${change.templateId}`,
    }),
    create(ChangeRequestAuthorizedSchema, {
      ...envelope(change, ChangeState.AUTHORIZED),
      board: ChangeBoard.PRE_AUTHORIZED,
      templateId: change.templateId,
    }),
  ];
}

function schedule(change: ChangeRequest, command: ScheduleChange): ChangeRequestEvent[] {
  // Rescheduling a scheduled change re-runs the freeze and collision checks on the new window.
  requireState(change, "schedule", [ChangeState.AUTHORIZED, ChangeState.SCHEDULED]);
  const window = toInterval(command.window);
  if (!window || window.end <= window.start) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.schedule.window_not_empty",
      "the window must have a start before its end",
    );
  }
  const footprint = { ciIds: change.affectedCiIds, environments: change.environments };
  const freezes = applicableFreezes(command.freezes, footprint, window);
  const justification = command.freezeOverrideJustification.trim();
  if (freezes.length > 0) {
    const details = freezes.map((freeze) => ({
      rule: "change.schedule.freeze",
      subject: freeze.freezeWindowId,
      description: `freeze window "${freeze.name}" applies to this change`,
    }));
    if (change.type !== ChangeType.EMERGENCY) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "change.schedule.freeze",
        `change ${change.key} cannot be scheduled inside freeze window(s) ${freezes.map((f) => `"${f.name}"`).join(", ")}; only an EMERGENCY change may override a freeze`,
        details,
      );
    }
    if (!justification) {
      throw changeRuleViolation(
        "FAILED_PRECONDITION",
        "change.schedule.freeze_override_justification",
        `emergency change ${change.key} falls inside freeze window(s) ${freezes.map((f) => `"${f.name}"`).join(", ")}; overriding needs freeze_override_justification`,
        details,
      );
    }
  }
  const collisions = collisionsWith(command.otherChanges, change, window);
  if (command.strict && collisions.length > 0) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.schedule.collision",
      `change ${change.key} collides with ${collisions.map((c) => c.key).join(", ")} (same CIs, overlapping windows)`,
      collisions.map((collision) => ({
        rule: "change.schedule.collision",
        subject: collision.changeRequestId,
        description: `${collision.key} touches ${collision.ciIds.join(", ")} in an overlapping window`,
      })),
    );
  }
  return [
    create(ChangeRequestScheduledSchema, {
      ...envelope(change, ChangeState.SCHEDULED),
      window: command.window,
      affectedCiIds: change.affectedCiIds,
      environments: change.environments,
      overriddenFreezeIds: freezes.map((freeze) => freeze.freezeWindowId),
      freezeOverrideJustification: freezes.length > 0 ? justification : "",
      collisions,
    }),
  ];
}

export function evolve(state: ChangeRequestState, event: ChangeRequestEvent): ChangeRequestState {
  const metadata = event.metadata;
  if (event.$typeName === "rdm.change.v1.ChangeRequestRaised") {
    const { metadata: _m, $typeName: _t, ...fields } = event;
    return {
      change: create(ChangeRequestSchema, {
        ...fields,
        board: boardFor(event.type),
        ...(metadata?.occurredAt ? { raisedAt: metadata.occurredAt, updatedAt: metadata.occurredAt } : {}),
        version: metadata?.streamVersion ?? 1n,
      }),
    };
  }
  const previous = state.change;
  if (!previous) return state;
  const change = create(ChangeRequestSchema, {
    ...previous,
    state: event.state,
    ...(metadata?.occurredAt ? { updatedAt: metadata.occurredAt } : {}),
    version: metadata?.streamVersion ?? previous.version + 1n,
  });
  switch (event.$typeName) {
    case "rdm.change.v1.ChangeRequestDetailsUpdated": {
      const {
        metadata: _m,
        $typeName: _t,
        changeRequestId: _c,
        linkedReleaseId: _l,
        state: _s,
        plannedWindow,
        ...fields
      } = event;
      Object.assign(change, fields);
      if (plannedWindow) change.plannedWindow = plannedWindow;
      else delete change.plannedWindow;
      break;
    }
    case "rdm.change.v1.ChangeRequestAssessed":
      change.impact = event.impact;
      change.urgency = event.urgency;
      change.risk = event.risk;
      change.board = event.board;
      change.requiredApprovals = event.requiredApprovals;
      change.assessmentNotes = event.notes;
      break;
    case "rdm.change.v1.ChangeApprovalRecorded":
      change.approvals = [
        ...previous.approvals,
        create(ChangeApprovalSchema, {
          approver: event.approver,
          decision: event.decision,
          comment: event.comment,
          ...(metadata?.occurredAt ? { decidedAt: metadata.occurredAt } : {}),
        }),
      ];
      break;
    case "rdm.change.v1.ChangeRequestRejected":
      change.rejectionReason = event.reason;
      break;
    case "rdm.change.v1.ChangeRequestScheduled":
      if (event.window) change.plannedWindow = event.window;
      change.overriddenFreezeIds = event.overriddenFreezeIds;
      change.freezeOverrideJustification = event.freezeOverrideJustification;
      change.collisions = event.collisions;
      break;
    case "rdm.change.v1.ChangeRequestFailed":
      change.failureReason = event.reason;
      break;
    case "rdm.change.v1.ChangeRequestReviewed":
      change.reviewOutcome = event.outcome;
      change.reviewNotes = event.notes;
      break;
    case "rdm.change.v1.ChangeRequestReleaseLinked":
    case "rdm.change.v1.ChangeRequestReleaseUnlinked":
      change.linkedReleaseId = event.linkedReleaseId;
      break;
    case "rdm.change.v1.ChangeTaskAdded":
      change.tasks = [
        ...previous.tasks,
        create(ChangeTaskSchema, {
          taskId: event.taskId,
          title: event.title,
          assignee: event.assignee,
          state: ChangeTaskState.OPEN,
        }),
      ];
      break;
    case "rdm.change.v1.ChangeTaskCompleted":
      change.tasks = previous.tasks.map((task) =>
        task.taskId === event.taskId
          ? create(ChangeTaskSchema, { ...task, state: ChangeTaskState.DONE, completedBy: event.completedBy })
          : task,
      );
      break;
    default:
      break;
  }
  return { change };
}

export const fold = (events: readonly ChangeRequestEvent[], state = initialState()): ChangeRequestState =>
  events.reduce(evolve, state);

/** Human-readable change key, e.g. CHG-2026-0042 (sequence numbers per year; gaps allowed). */
export const changeKey = (year: number, sequence: number) => `CHG-${year}-${String(sequence).padStart(4, "0")}`;
