import { clone, create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
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
  type ReleaseTask,
  ReleaseTaskSchema,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { STANDARD_MODEL } from "../models.js";
import { phaseIndex } from "./rules.js";
import type { ReleaseEvent, ReleaseState } from "./types.js";

type EventOf<T extends ReleaseEvent["$typeName"]> = Extract<ReleaseEvent, { $typeName: T }>;

export const initialState = (): ReleaseState => ({ release: undefined, model: undefined });

/** Applies one event to the state (pure: the state passed in is not changed). */
export function evolve(state: ReleaseState, event: ReleaseEvent): ReleaseState {
  if (event.$typeName === "rdm.release.v1.ReleaseRegistered") return registered(event);
  if (!state.release) return state;
  const release = clone(ReleaseSchema, state.release);
  release.version = event.metadata?.streamVersion ?? release.version + 1n;
  if (!applyToTasksOrPackage(release, event)) applyToLifecycle(release, event, state.model);
  return { model: state.model, release };
}

function registered(event: EventOf<"rdm.release.v1.ReleaseRegistered">): ReleaseState {
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

/** When `release` entered its current phase entry, reset what belongs to the phase. */
function enterPhase(release: Release, phase: ReleasePhase, entry: number, due: Timestamp | undefined, at?: Timestamp) {
  release.phase = phase;
  release.phaseEntry = entry;
  release.phaseDueAt = due;
  release.phaseEnteredAt = at;
}

/** Planning, phases, approvals and deadlines. */
function applyToLifecycle(release: Release, event: ReleaseEvent, model: ReleaseModel | undefined): void {
  const at = event.metadata?.occurredAt;
  switch (event.$typeName) {
    case "rdm.release.v1.ReleasePlanningUpdated":
      planningUpdated(release, event);
      break;
    case "rdm.release.v1.ReleasePhaseAdvanced":
      enterPhase(release, event.toPhase, event.phaseEntry, event.phaseDueAt, at);
      break;
    case "rdm.release.v1.ReleasePhaseReworked":
      enterPhase(release, event.toPhase, event.phaseEntry, event.phaseDueAt, at);
      // A review is of the phase entry it was recorded in: after a rework the release is reviewed again.
      release.review = undefined;
      // Going back to (or before) BUILD_AND_TEST reopens the package for the rebuild.
      if (model && phaseIndex(model, event.toPhase) <= phaseIndex(model, ReleasePhase.BUILD_AND_TEST))
        release.packageFrozen = false;
      break;
    case "rdm.release.v1.ReleaseAbandoned":
      release.status = ReleaseStatus.ABANDONED;
      release.abandonReason = event.reason;
      break;
    case "rdm.release.v1.ReleaseClosed":
      enterPhase(release, ReleasePhase.CLOSED, release.phaseEntry + 1, undefined, at);
      release.status = ReleaseStatus.CLOSED;
      break;
    case "rdm.release.v1.ReleaseApprovalRequested":
      approvalRequested(release, event);
      break;
    case "rdm.release.v1.ReleaseApprovalGranted":
    case "rdm.release.v1.ReleaseApprovalRejected":
      voteRecorded(release, event);
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
  }
}

/** Tasks, linked changes, the package, the log and the review; false for any other event. */
function applyToTasksOrPackage(release: Release, event: ReleaseEvent): boolean {
  const task = (taskId: string) => release.tasks.find((t) => t.taskId === taskId);
  switch (event.$typeName) {
    case "rdm.release.v1.ReleaseTaskAdded":
      if (event.task) release.tasks.push(create(ReleaseTaskSchema, event.task));
      return true;
    case "rdm.release.v1.ReleaseTaskAssigned": {
      const t = task(event.taskId);
      if (t) t.assignee = event.assignee;
      return true;
    }
    case "rdm.release.v1.ReleaseTaskStarted":
      setTaskStatus(task(event.taskId), TaskStatus.IN_PROGRESS);
      return true;
    case "rdm.release.v1.ReleaseTaskCompleted":
      setTaskStatus(task(event.taskId), TaskStatus.DONE);
      return true;
    case "rdm.release.v1.ReleaseTaskCancelled":
      setTaskStatus(task(event.taskId), TaskStatus.CANCELLED);
      return true;
    case "rdm.release.v1.ReleaseTaskOverdue": {
      const t = task(event.taskId);
      if (t) t.overdue = true;
      return true;
    }
    case "rdm.release.v1.ReleaseChangeRequestLinked":
      release.linkedChangeRequestIds.push(event.changeRequestId);
      return true;
    case "rdm.release.v1.ReleaseChangeRequestUnlinked":
      release.linkedChangeRequestIds = release.linkedChangeRequestIds.filter((id) => id !== event.changeRequestId);
      return true;
    case "rdm.release.v1.ReleaseArtifactAttached":
      if (event.artifact) release.package.push(create(PackageArtifactSchema, event.artifact));
      return true;
    case "rdm.release.v1.ReleaseArtifactDetached":
      release.package = release.package.filter((a) => a.artifactId !== event.artifactId);
      return true;
    case "rdm.release.v1.ReleasePackageFrozen":
      release.packageFrozen = true;
      return true;
    case "rdm.release.v1.ReleaseBackOutPlanSet":
      release.backOutPlan = event.backOutPlan;
      return true;
    case "rdm.release.v1.ReleaseLogEntryRecorded":
      if (event.entry) release.log.push(create(LogEntrySchema, event.entry));
      return true;
    case "rdm.release.v1.ReleaseReviewRecorded":
      if (event.review) release.review = create(PostImplementationReviewSchema, event.review);
      return true;
    case "rdm.release.v1.ReleaseDeploymentRecorded":
      if (event.deployment) release.deployments.push(create(ReleaseDeploymentSchema, event.deployment));
      return true;
    case "rdm.release.v1.ReleaseDeviationRecorded":
      if (event.deployment) release.deployments.push(create(ReleaseDeploymentSchema, event.deployment));
      if (event.entry) release.log.push(create(LogEntrySchema, event.entry));
      return true;
    default:
      return false;
  }
}

function setTaskStatus(task: ReleaseTask | undefined, status: TaskStatus): void {
  if (!task) return;
  task.status = status;
  // An overdue task that is done (or no longer asked for) is no longer overdue.
  if (status === TaskStatus.DONE || status === TaskStatus.CANCELLED) task.overdue = false;
}

function planningUpdated(release: Release, event: EventOf<"rdm.release.v1.ReleasePlanningUpdated">): void {
  const { metadata: _m, $typeName: _t, releaseId: _r, ...fields } = event;
  Object.assign(release, fields);
  // A coordinator named while an approval is pending stays unable to vote on it, even if
  // replaced again before voting.
  for (const approval of release.approvals) {
    const pending = approval.status === ApprovalStatus.PENDING;
    if (pending && release.coordinator && !approval.ineligibleApprovers.includes(release.coordinator))
      approval.ineligibleApprovers.push(release.coordinator);
  }
}

function approvalRequested(release: Release, event: EventOf<"rdm.release.v1.ReleaseApprovalRequested">): void {
  const at = event.metadata?.occurredAt;
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
}

function voteRecorded(
  release: Release,
  event: EventOf<"rdm.release.v1.ReleaseApprovalGranted" | "rdm.release.v1.ReleaseApprovalRejected">,
): void {
  const at = event.metadata?.occurredAt;
  const approval = release.approvals.find((a) => a.approvalId === event.approvalId);
  if (!approval) return;
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
}

export const fold = (events: ReleaseEvent[], state = initialState()): ReleaseState => events.reduce(evolve, state);
