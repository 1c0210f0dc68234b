import { create } from "@bufbuild/protobuf";
import {
  ChangeApprovalSchema,
  type ChangeRequest,
  ChangeRequestSchema,
  ChangeState,
  ChangeTaskSchema,
  ChangeTaskState,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { boardFor } from "../risk.js";
import type { ChangeRequestEvent, ChangeRequestState } from "./types.js";

type EventOf<T extends ChangeRequestEvent["$typeName"]> = Extract<ChangeRequestEvent, { $typeName: T }>;

export const initialState = (): ChangeRequestState => ({ change: undefined });

/** Applies one event to the state (pure: the state passed in is not changed). */
export function evolve(state: ChangeRequestState, event: ChangeRequestEvent): ChangeRequestState {
  const metadata = event.metadata;
  if (event.$typeName === "rdm.change.v1.ChangeRequestRaised") return raised(event);
  const previous = state.change;
  if (!previous) return state;
  const change = create(ChangeRequestSchema, {
    ...previous,
    state: event.state,
    ...(metadata?.occurredAt ? { updatedAt: metadata.occurredAt } : {}),
    version: metadata?.streamVersion ?? previous.version + 1n,
  });
  apply(change, previous, event);
  if (change.state !== ChangeState.IMPLEMENTING) {
    change.awaitingTasksDeploymentId = "";
    change.awaitingTasksEnvironment = "";
  }
  return {
    change,
    releaseLinkConfirmed: linkConfirmedAfter(state.releaseLinkConfirmed ?? false, event),
    ...releaseEventVersionsAfter(state, event),
  };
}

/** The release event a link or unlink mirrored, by its release (see ChangeRequestState). */
function releaseEventVersionsAfter(
  state: ChangeRequestState,
  event: ChangeRequestEvent,
): Pick<ChangeRequestState, "releaseEventVersions"> {
  const versions = state.releaseEventVersions;
  const mirrored =
    event.$typeName === "rdm.change.v1.ChangeRequestReleaseLinked"
      ? { releaseId: event.linkedReleaseId, version: event.releaseEventVersion }
      : event.$typeName === "rdm.change.v1.ChangeRequestReleaseUnlinked"
        ? { releaseId: event.releaseId, version: event.releaseEventVersion }
        : undefined;
  if (!mirrored?.version) return versions ? { releaseEventVersions: versions } : {};
  return { releaseEventVersions: new Map(versions).set(mirrored.releaseId, mirrored.version) };
}

/** A link mirrored from its release is confirmed; an unlink leaves nothing to confirm. */
function linkConfirmedAfter(confirmed: boolean, event: ChangeRequestEvent): boolean {
  if (event.$typeName === "rdm.change.v1.ChangeRequestReleaseLinked") return true;
  if (event.$typeName === "rdm.change.v1.ChangeRequestReleaseUnlinked" && !event.linkedReleaseId) return false;
  return confirmed;
}

function raised(event: EventOf<"rdm.change.v1.ChangeRequestRaised">): ChangeRequestState {
  const metadata = event.metadata;
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

/** Sets on `change` (a copy of `previous` in the event's state) what the event changed besides the state. */
function apply(change: ChangeRequest, previous: ChangeRequest, event: ChangeRequestEvent): void {
  switch (event.$typeName) {
    case "rdm.change.v1.ChangeRequestDetailsUpdated":
      detailsUpdated(change, event);
      break;
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
          ...(event.metadata?.occurredAt ? { decidedAt: event.metadata.occurredAt } : {}),
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
    case "rdm.change.v1.ChangeRequestImplementationAwaitingTasks":
      change.awaitingTasksDeploymentId = event.deploymentId;
      change.awaitingTasksEnvironment = event.environment;
      break;
    case "rdm.change.v1.ChangeRequestEnvironmentImplemented":
      change.implementedEnvironments = [...previous.implementedEnvironments, event.environment];
      break;
    case "rdm.change.v1.ChangeRequestImplemented":
      change.implementedByDeploymentId = event.deploymentId;
      break;
    case "rdm.change.v1.ChangeRequestFailed":
      change.failureReason = event.reason;
      break;
    case "rdm.change.v1.ChangeRequestCancelled":
      change.cancellationReason = event.reason;
      change.cancelledBy = event.cancelledBy;
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
    case "rdm.change.v1.ChangeTaskCompleted":
      change.tasks = tasksAfter(previous, event);
      break;
    default:
      break;
  }
}

function detailsUpdated(change: ChangeRequest, event: EventOf<"rdm.change.v1.ChangeRequestDetailsUpdated">): void {
  const {
    metadata: _m,
    $typeName: _t,
    changeRequestId: _c,
    linkedReleaseId: _l,
    state: _s,
    plannedWindow,
    firstCommitTime,
    ...fields
  } = event;
  Object.assign(change, fields);
  if (plannedWindow) change.plannedWindow = plannedWindow;
  else delete change.plannedWindow;
  if (firstCommitTime) change.firstCommitTime = firstCommitTime;
  else delete change.firstCommitTime;
}

function tasksAfter(
  previous: ChangeRequest,
  event: EventOf<"rdm.change.v1.ChangeTaskAdded" | "rdm.change.v1.ChangeTaskCompleted">,
): ChangeRequest["tasks"] {
  if (event.$typeName === "rdm.change.v1.ChangeTaskAdded")
    return [
      ...previous.tasks,
      create(ChangeTaskSchema, {
        taskId: event.taskId,
        title: event.title,
        assignee: event.assignee,
        state: ChangeTaskState.OPEN,
      }),
    ];
  return previous.tasks.map((task) =>
    task.taskId === event.taskId
      ? create(ChangeTaskSchema, { ...task, state: ChangeTaskState.DONE, completedBy: event.completedBy })
      : task,
  );
}

export const fold = (events: readonly ChangeRequestEvent[], state = initialState()): ChangeRequestState =>
  events.reduce(evolve, state);
