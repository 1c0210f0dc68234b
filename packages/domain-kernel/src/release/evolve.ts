import { clone, create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import {
  ApprovalSchema,
  ApprovalStatus,
  ApprovalVoteSchema,
  DeadlineMissSchema,
  LogEntrySchema,
  PackageArtifactSchema,
  PostImplementationReviewSchema,
  type Release,
  ReleaseDeploymentSchema,
  ReleasePhase,
  ReleaseSchema,
  ReleaseStatus,
  ReleaseTaskSchema,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { type CopyOnceFold, foldCopyingOnce } from "../fold.js";
import { STANDARD_MODEL } from "./models.js";
import { initialState, phaseIndex, type ReleaseEvent, type ReleaseState } from "./state.js";

/** When `release` entered its current phase entry, reset what belongs to the phase. */
function enterPhase(release: Release, phase: ReleasePhase, entry: number, due: Timestamp | undefined, at?: Timestamp) {
  // A task of an entry the release has left can be neither completed nor cancelled: no longer overdue.
  for (const task of release.tasks) {
    if (task.overdue && (task.phase !== phase || task.phaseEntry !== entry)) task.overdue = false;
  }
  release.phase = phase;
  release.phaseEntry = entry;
  release.phaseDueAt = due;
  release.phaseEnteredAt = at;
}

function registered(event: ev.ReleaseRegistered): ReleaseState {
  const at = event.metadata?.occurredAt;
  const { metadata, $typeName: _, model: pinned, phaseEntry, phaseDueAt, ...fields } = event;
  // Releases registered before models existed follow version 1 of the standard model.
  const model = pinned ?? STANDARD_MODEL;
  return {
    model,
    release: create(ReleaseSchema, {
      ...fields,
      registeredBy: metadata?.actor ?? "",
      ...(at ? { registeredAt: at, phaseEnteredAt: at } : {}),
      ...(phaseDueAt ? { phaseDueAt } : {}),
      version: metadata?.streamVersion ?? 1n,
      modelName: model.name,
      modelVersion: model.version,
      status: ReleaseStatus.ACTIVE,
      phaseEntry: phaseEntry || 1,
    }),
  };
}

/** Planning, phases and the end of the lifecycle. */
function applyLifecycle(release: Release, event: ReleaseEvent, state: ReleaseState): boolean {
  const at = event.metadata?.occurredAt;
  switch (event.$typeName) {
    case "rdm.release.v1.ReleasePlanningUpdated": {
      const { metadata: _m, $typeName: _t, releaseId: _r, plannedWindowReplaced, plannedWindow, ...fields } = event;
      Object.assign(release, fields);
      // Older events carried no window when it was to stay.
      if (plannedWindow || plannedWindowReplaced) release.plannedWindow = plannedWindow;
      // A coordinator named while an approval is pending stays unable to vote on it, even if
      // replaced again before voting.
      for (const approval of release.approvals) {
        const pending = approval.status === ApprovalStatus.PENDING;
        if (pending && release.coordinator && !approval.ineligibleApprovers.includes(release.coordinator))
          approval.ineligibleApprovers.push(release.coordinator);
      }
      return true;
    }
    case "rdm.release.v1.ReleasePhaseAdvanced":
      enterPhase(release, event.toPhase, event.phaseEntry, event.phaseDueAt, at);
      return true;
    case "rdm.release.v1.ReleasePhaseReworked":
      enterPhase(release, event.toPhase, event.phaseEntry, event.phaseDueAt, at);
      // A review is of the phase entry it was recorded in: after a rework the release is reviewed again.
      release.review = undefined;
      // Going back to (or before) BUILD_AND_TEST reopens the package for the rebuild.
      if (state.model && phaseIndex(state.model, event.toPhase) <= phaseIndex(state.model, ReleasePhase.BUILD_AND_TEST))
        release.packageFrozen = false;
      return true;
    case "rdm.release.v1.ReleaseAbandoned":
      release.status = ReleaseStatus.ABANDONED;
      release.abandonReason = event.reason;
      return true;
    case "rdm.release.v1.ReleaseClosed":
      enterPhase(release, ReleasePhase.CLOSED, release.phaseEntry + 1, undefined, at);
      release.status = ReleaseStatus.CLOSED;
      return true;
    default:
      return false;
  }
}

function applyApprovals(release: Release, event: ReleaseEvent): boolean {
  const at = event.metadata?.occurredAt;
  switch (event.$typeName) {
    case "rdm.release.v1.ReleaseApprovalRequested":
      release.approvals.push(
        create(ApprovalSchema, {
          approvalId: event.approvalId,
          phase: event.phase,
          phaseEntry: event.phaseEntry,
          approverGroup: event.approverGroup,
          quorum: event.quorum,
          requestedBy: event.metadata?.actor ?? "",
          ...(at ? { requestedAt: at } : {}),
          status: ApprovalStatus.PENDING,
          ineligibleApprovers: [
            ...new Set([release.owner, release.coordinator, release.registeredBy, event.metadata?.actor ?? ""]),
          ].filter(Boolean),
        }),
      );
      return true;
    case "rdm.release.v1.ReleaseApprovalGranted":
    case "rdm.release.v1.ReleaseApprovalRejected": {
      const approval = release.approvals.find((a) => a.approvalId === event.approvalId);
      if (!approval) return true;
      const approved = event.$typeName === "rdm.release.v1.ReleaseApprovalGranted";
      approval.votes.push(
        create(ApprovalVoteSchema, {
          approver: event.approver,
          approved,
          comment: approved ? event.comment : event.reason,
          ...(at ? { at } : {}),
        }),
      );
      if (!approved) approval.status = ApprovalStatus.REJECTED;
      else if (approval.votes.filter((v) => v.approved).length >= approval.quorum)
        approval.status = ApprovalStatus.APPROVED;
      return true;
    }
    default:
      return false;
  }
}

const TASK_STATUS_AFTER: Partial<Record<ReleaseEvent["$typeName"], TaskStatus>> = {
  "rdm.release.v1.ReleaseTaskStarted": TaskStatus.IN_PROGRESS,
  "rdm.release.v1.ReleaseTaskCompleted": TaskStatus.DONE,
  "rdm.release.v1.ReleaseTaskCancelled": TaskStatus.CANCELLED,
};

function applyTasks(release: Release, event: ReleaseEvent): boolean {
  const task = (taskId: string) => release.tasks.find((t) => t.taskId === taskId);
  switch (event.$typeName) {
    case "rdm.release.v1.ReleaseTaskAdded":
      // A copy: later events change a task in place.
      if (event.task) release.tasks.push(clone(ReleaseTaskSchema, create(ReleaseTaskSchema, event.task)));
      return true;
    case "rdm.release.v1.ReleaseTaskAssigned": {
      const t = task(event.taskId);
      if (t) t.assignee = event.assignee;
      return true;
    }
    case "rdm.release.v1.ReleaseTaskStarted":
    case "rdm.release.v1.ReleaseTaskCompleted":
    case "rdm.release.v1.ReleaseTaskCancelled": {
      const t = task(event.taskId);
      const status = TASK_STATUS_AFTER[event.$typeName];
      if (t && status !== undefined) t.status = status;
      // Done or no longer asked for: no longer overdue.
      if (t && event.$typeName !== "rdm.release.v1.ReleaseTaskStarted") t.overdue = false;
      return true;
    }
    case "rdm.release.v1.ReleaseTaskOverdue": {
      const t = task(event.taskId);
      if (t) t.overdue = true;
      return true;
    }
    default:
      return false;
  }
}

/** Linked changes, the package, the log, the review and deadlines. */
function applyRecords(release: Release, event: ReleaseEvent): void {
  switch (event.$typeName) {
    case "rdm.release.v1.ReleaseChangeRequestLinked":
      // A link said again (relinked) is listed once.
      if (!release.linkedChangeRequestIds.includes(event.changeRequestId))
        release.linkedChangeRequestIds.push(event.changeRequestId);
      break;
    case "rdm.release.v1.ReleaseChangeRequestUnlinked":
      release.linkedChangeRequestIds = release.linkedChangeRequestIds.filter((id) => id !== event.changeRequestId);
      break;
    case "rdm.release.v1.ReleaseArtifactAttached":
      if (event.artifact) release.package.push(create(PackageArtifactSchema, event.artifact));
      break;
    case "rdm.release.v1.ReleaseArtifactDetached":
      release.package = release.package.filter((a) => a.artifactId !== event.artifactId);
      break;
    case "rdm.release.v1.ReleasePackageFrozen":
      release.packageFrozen = true;
      break;
    case "rdm.release.v1.ReleaseBackOutPlanSet":
      release.backOutPlan = event.backOutPlan;
      break;
    case "rdm.release.v1.ReleaseLogEntryRecorded":
      if (event.entry) release.log.push(create(LogEntrySchema, event.entry));
      break;
    case "rdm.release.v1.ReleaseReviewRecorded":
      if (event.review) release.review = create(PostImplementationReviewSchema, event.review);
      break;
    case "rdm.release.v1.ReleaseDeploymentRecorded":
      if (event.deployment) release.deployments.push(create(ReleaseDeploymentSchema, event.deployment));
      break;
    case "rdm.release.v1.ReleaseDeviationRecorded":
      if (event.deployment) release.deployments.push(create(ReleaseDeploymentSchema, event.deployment));
      if (event.entry) release.log.push(create(LogEntrySchema, event.entry));
      break;
    case "rdm.release.v1.ReleaseDeadlineMissed":
      release.deadlineMisses.push(
        create(DeadlineMissSchema, {
          phase: event.phase,
          phaseEntry: event.phaseEntry,
          ...(event.dueAt ? { dueAt: event.dueAt } : {}),
        }),
      );
      break;
    case "rdm.release.v1.ReleaseDeadlineEscalated": {
      const miss = release.deadlineMisses.find((m) => m.phaseEntry === event.phaseEntry);
      if (miss) miss.escalated = true;
      break;
    }
    default:
      break;
  }
}

/** One event applied to a release the caller owns (a copy of its own). */
function applyTo(release: Release, event: ReleaseEvent, state: ReleaseState): void {
  release.version = event.metadata?.streamVersion ?? release.version + 1n;
  if (!applyLifecycle(release, event, state) && !applyApprovals(release, event) && !applyTasks(release, event))
    applyRecords(release, event);
}

const REGISTERED = "rdm.release.v1.ReleaseRegistered";

/**
 * A copy of a release that applyTo may change: what events change in place (tasks, approvals,
 * deadline misses) is cloned; the lists events only add to or replace (the log, deployments, the
 * package, linked changes) are new arrays of the same items, since a recorded item never changes.
 * A deep clone made every command on a release cost its whole size (a third of the release
 * service's CPU a command on a release of 758 KB).
 */
function copyRelease(release: Release): Release {
  return {
    ...release,
    tasks: release.tasks.map((t) => clone(ReleaseTaskSchema, t)),
    approvals: release.approvals.map((a) => clone(ApprovalSchema, a)),
    deadlineMisses: release.deadlineMisses.map((m) => clone(DeadlineMissSchema, m)),
    log: [...release.log],
    deployments: [...release.deployments],
    package: [...release.package],
    linkedChangeRequestIds: [...release.linkedChangeRequestIds],
  };
}

/** Releases fold with one copy per call (see foldCopyingOnce); a registration opens the stream. */
const releaseFold: CopyOnceFold<ReleaseState, ReleaseEvent> = {
  start: (event) => (event.$typeName === REGISTERED ? registered(event) : undefined),
  exists: (state) => state.release !== undefined,
  copy: (state) => ({ model: state.model, release: copyRelease(state.release as Release) }),
  apply: (state, event) => applyTo(state.release as Release, event, state),
};

/** The release after one of its events; events before the registration change nothing. */
export const evolve = (state: ReleaseState, event: ReleaseEvent): ReleaseState =>
  foldCopyingOnce(releaseFold, [event], state);

/**
 * The release after its events, as evolve one after another gives it, with the release copied
 * once instead of once an event (folding 2,000 log entries took 2.6 s). A task is added as a
 * copy, since later events change it in place.
 */
export const fold = (events: ReleaseEvent[], state = initialState()): ReleaseState =>
  foldCopyingOnce(releaseFold, events, state);
