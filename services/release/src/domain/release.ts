import { clone, create } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type DecisionContext, RuleViolation, type RuleViolationCode } from "@rdm/command-handler";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type { PhaseDefinition, ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import {
  type Approval,
  ApprovalSchema,
  ApprovalStatus,
  ApprovalVoteSchema,
  DeadlineMissSchema,
  type GateCondition,
  GateConditionSchema,
  type LogEntryKind,
  LogEntrySchema,
  type PackageArtifact,
  PackageArtifactSchema,
  PostImplementationReviewSchema,
  type Release,
  ReleasePhase,
  ReleaseSchema,
  ReleaseStatus,
  ReleaseTaskSchema,
  type ReleaseType,
  type ReviewOutcome,
  type RiskLevel,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { durationMs, STANDARD_MODEL } from "./models.js";

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
  | ev.ReleaseNotificationRequested;

export interface ReleaseState {
  /** Undefined until the release is registered. */
  release: Release | undefined;
  /** The model version pinned at registration. */
  model: ReleaseModel | undefined;
}

export const initialState = (): ReleaseState => ({ release: undefined, model: undefined });

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
  | { kind: "escalateDeadline"; phaseEntry: number };

/** Who decides and when: the decider reads the clock and ids only through this. */
export type { DecisionContext };

const refuse = (
  rule: string,
  message: string,
  code: RuleViolationCode = "FAILED_PRECONDITION",
  /** What the rule is about, e.g. the approver group or a missing task's id; the release when not more specific. */
  subject = "release",
): never => {
  throw new RuleViolation(code, rule, message, { subject });
};

const phaseName = (p: ReleasePhase) => ReleasePhase[p] ?? String(p);
const ts = (d: Date) => timestampFromDate(d);

function phaseDefinition(model: ReleaseModel, phase: ReleasePhase): PhaseDefinition | undefined {
  return model.phases.find((p) => p.phase === phase);
}

function phaseIndex(model: ReleaseModel, phase: ReleasePhase): number {
  return model.phases.findIndex((p) => p.phase === phase);
}

export function nextPhase(model: ReleaseModel, phase: ReleasePhase): ReleasePhase | undefined {
  return model.phases[phaseIndex(model, phase) + 1]?.phase;
}

function dueAt(definition: PhaseDefinition | undefined, now: Date): Timestamp | undefined {
  const ms = durationMs(definition?.deadline);
  return ms > 0 ? ts(new Date(now.getTime() + ms)) : undefined;
}

/** Tasks the model creates when `phase` starts its `entry`-th time. */
function templateTasks(
  releaseId: string,
  model: ReleaseModel,
  phase: ReleasePhase,
  entry: number,
  ctx: DecisionContext,
): ev.ReleaseTaskAdded[] {
  return (phaseDefinition(model, phase)?.tasks ?? []).map((template) => {
    const due = durationMs(template.dueAfter);
    return create(ev.ReleaseTaskAddedSchema, {
      releaseId,
      task: {
        taskId: ctx.newId(),
        phase,
        phaseEntry: entry,
        name: template.name,
        required: template.required,
        fromModel: true,
        status: TaskStatus.OPEN,
        ...(due > 0 ? { dueAt: ts(new Date(ctx.now.getTime() + due)) } : {}),
      },
    });
  });
}

/** The latest approval request of each group for the current entry of the current phase. */
function currentApprovals(release: Release): Map<string, Approval> {
  const byGroup = new Map<string, Approval>();
  for (const a of release.approvals) {
    if (a.phase === release.phase && a.phaseEntry === release.phaseEntry) byGroup.set(a.approverGroup, a);
  }
  return byGroup;
}

const condition = (rule: string, subject: string, description: string, met: boolean) =>
  create(GateConditionSchema, { rule, subject, description, met });

/**
 * Every condition of the current phase's gate, met or not: required tasks done, required
 * approvals granted (and not rejected), linked change requests in a state the model accepts.
 */
export function gateConditions(state: ReleaseState, changes: LinkedChangeState[]): GateCondition[] {
  const { release, model } = state;
  if (!release || !model) return [];
  const definition = phaseDefinition(model, release.phase);
  if (!definition) return [];
  const conditions: GateCondition[] = [];
  for (const task of release.tasks) {
    if (!task.required || task.phase !== release.phase || task.phaseEntry !== release.phaseEntry) continue;
    if (task.status === TaskStatus.CANCELLED) continue;
    conditions.push(
      condition(
        "gate.required_task_done",
        task.taskId,
        `required task "${task.name}" is ${TaskStatus[task.status]}`,
        task.status === TaskStatus.DONE,
      ),
    );
  }
  const approvals = currentApprovals(release);
  for (const requirement of definition.approvals) {
    const group = requirement.approverGroup;
    const approval = approvals.get(group);
    if (!approval) {
      conditions.push(condition("gate.approval_requested", group, `no approval requested from ${group}`, false));
    } else if (approval.status === ApprovalStatus.REJECTED) {
      const by = approval.votes.find((v) => !v.approved);
      conditions.push(
        condition(
          "gate.approval_rejected",
          group,
          `${group} rejected${by ? ` (${by.approver}: ${by.comment})` : ""}; request a new approval`,
          false,
        ),
      );
    } else {
      const granted = approval.votes.filter((v) => v.approved).length;
      conditions.push(
        condition(
          "gate.approval_granted",
          group,
          `${group} approvals ${granted} of ${requirement.quorum}`,
          approval.status === ApprovalStatus.APPROVED,
        ),
      );
    }
  }
  if (definition.requiresLinkedChange) {
    conditions.push(
      condition(
        "gate.linked_change_present",
        "change_request",
        "at least one change request must be linked",
        release.linkedChangeRequestIds.length > 0,
      ),
    );
  }
  if (definition.linkedChangeStates.length) {
    const known = new Map(changes.map((c) => [c.changeRequestId, c.state]));
    for (const id of release.linkedChangeRequestIds) {
      const changeState = known.get(id);
      conditions.push(
        condition(
          "gate.linked_change_state",
          id,
          changeState
            ? `change request ${id} is ${changeState}, needs one of ${definition.linkedChangeStates.join(", ")}`
            : `state of change request ${id} is unknown (no change event received)`,
          changeState !== undefined && definition.linkedChangeStates.includes(changeState),
        ),
      );
    }
  }
  return conditions;
}

function requireRelease(state: ReleaseState): { release: Release; model: ReleaseModel } {
  if (!state.release || !state.model) return refuse("release.exists", "release not found", "NOT_FOUND");
  return { release: state.release, model: state.model };
}

function requireActive(state: ReleaseState): { release: Release; model: ReleaseModel } {
  const found = requireRelease(state);
  if (found.release.status !== ReleaseStatus.ACTIVE)
    refuse("release.active", `release is ${ReleaseStatus[found.release.status]}`);
  return found;
}

function requireGate(state: ReleaseState, changes: LinkedChangeState[]): void {
  const unmet = gateConditions(state, changes).filter((c) => !c.met);
  if (unmet.length) {
    throw new RuleViolation(
      "FAILED_PRECONDITION",
      "gate.not_met",
      `gate of ${phaseName(state.release?.phase ?? ReleasePhase.UNSPECIFIED)} not met: ${unmet.map((c) => c.description).join("; ")}`,
      {
        subject: "release",
        conditions: unmet.map(({ rule, subject, description }) => ({ rule, subject, description })),
      },
    );
  }
}

function requireTask(release: Release, taskId: string) {
  const task = release.tasks.find((t) => t.taskId === taskId);
  if (!task) return refuse("task.exists", `task ${taskId} not found`, "NOT_FOUND", taskId);
  return task;
}

function requireOpenTask(release: Release, taskId: string) {
  const task = requireTask(release, taskId);
  if (task.status === TaskStatus.DONE || task.status === TaskStatus.CANCELLED)
    refuse("task.open", `task ${taskId} is already ${TaskStatus[task.status]}`);
  if (task.phase !== release.phase || task.phaseEntry !== release.phaseEntry)
    refuse("task.current_phase", `task ${taskId} belongs to a phase the release has left`);
  return task;
}

/** Decides a command against the state; returns the events to append or throws a RuleViolation. */
export function decide(command: ReleaseCommand, state: ReleaseState, ctx: DecisionContext): ReleaseEvent[] {
  if (command.kind === "registerRelease") {
    if (state.release) refuse("release.unique_id", `release ${command.releaseId} already exists`, "ALREADY_EXISTS");
    const { kind: _, releaseId, plannedWindow, model, ...fields } = command;
    const first = model.phases[0]?.phase ?? ReleasePhase.REGISTRATION;
    const due = dueAt(model.phases[0], ctx.now);
    return [
      create(ev.ReleaseRegisteredSchema, {
        releaseId,
        ...fields,
        ...(plannedWindow ? { plannedWindow } : {}),
        phase: first,
        model,
        phaseEntry: 1,
        ...(due ? { phaseDueAt: due } : {}),
      }),
      ...templateTasks(releaseId, model, first, 1, ctx),
    ];
  }

  const releaseId = state.release?.releaseId ?? "";
  switch (command.kind) {
    case "updatePlanning": {
      requireActive(state);
      const { kind: _, plannedWindow, ...fields } = command;
      return [
        create(ev.ReleasePlanningUpdatedSchema, { releaseId, ...fields, ...(plannedWindow ? { plannedWindow } : {}) }),
      ];
    }

    case "advancePhase": {
      const { release, model } = requireActive(state);
      if (command.fromPhase !== ReleasePhase.UNSPECIFIED && command.fromPhase !== release.phase)
        refuse("phase.expected", `release is in ${phaseName(release.phase)}, not ${phaseName(command.fromPhase)}`);
      const to = nextPhase(model, release.phase);
      if (to === undefined) return refuse("phase.last", "the release is in its last phase");
      if (to === ReleasePhase.CLOSED)
        refuse("phase.close_with_review", "the last step is CloseRelease, after the post-implementation review");
      requireGate(state, command.changes);
      const entry = release.phaseEntry + 1;
      const due = dueAt(phaseDefinition(model, to), ctx.now);
      const events: ReleaseEvent[] = [];
      if (release.phase === ReleasePhase.BUILD_AND_TEST && !release.packageFrozen)
        events.push(create(ev.ReleasePackageFrozenSchema, { releaseId, package: release.package }));
      events.push(
        create(ev.ReleasePhaseAdvancedSchema, {
          releaseId,
          fromPhase: release.phase,
          toPhase: to,
          phaseEntry: entry,
          ...(due ? { phaseDueAt: due } : {}),
        }),
        ...templateTasks(releaseId, model, to, entry, ctx),
      );
      return events;
    }

    case "reworkRelease": {
      const { release, model } = requireActive(state);
      const target = phaseIndex(model, command.toPhase);
      if (target < 0) refuse("rework.phase_in_model", `${phaseName(command.toPhase)} is not a phase of the model`);
      if (target >= phaseIndex(model, release.phase))
        refuse("rework.earlier_phase", `rework must go back to a phase before ${phaseName(release.phase)}`);
      if (!command.reason.trim()) refuse("rework.reason_required", "a reason is required");
      const entry = release.phaseEntry + 1;
      const due = dueAt(phaseDefinition(model, command.toPhase), ctx.now);
      return [
        create(ev.ReleasePhaseReworkedSchema, {
          releaseId,
          fromPhase: release.phase,
          toPhase: command.toPhase,
          phaseEntry: entry,
          reason: command.reason,
          ...(due ? { phaseDueAt: due } : {}),
        }),
        ...templateTasks(releaseId, model, command.toPhase, entry, ctx),
      ];
    }

    case "abandonRelease": {
      const { release } = requireActive(state);
      if (!command.reason.trim()) refuse("abandon.reason_required", "a reason is required");
      return [create(ev.ReleaseAbandonedSchema, { releaseId, phase: release.phase, reason: command.reason })];
    }

    case "closeRelease": {
      const { release, model } = requireActive(state);
      if (nextPhase(model, release.phase) !== ReleasePhase.CLOSED)
        refuse(
          "close.from_last_phase",
          `a release closes from the phase before CLOSED, not ${phaseName(release.phase)}`,
        );
      if (!release.review) refuse("close.review_required", "the post-implementation review must be recorded first");
      requireGate(state, command.changes);
      return [create(ev.ReleaseClosedSchema, { releaseId, outcome: release.review?.outcome })];
    }

    case "requestApproval": {
      const { release, model } = requireActive(state);
      const requirement = phaseDefinition(model, release.phase)?.approvals.find(
        (a) => a.approverGroup === command.approverGroup,
      );
      if (!requirement)
        return refuse(
          "approval.required_by_phase",
          `${phaseName(release.phase)} requires no approval from ${command.approverGroup}`,
        );
      const pending = currentApprovals(release).get(command.approverGroup);
      if (pending && pending.status !== ApprovalStatus.REJECTED)
        refuse(
          "approval.not_pending",
          `an approval by ${command.approverGroup} is already ${ApprovalStatus[pending.status]}`,
        );
      return [
        create(ev.ReleaseApprovalRequestedSchema, {
          releaseId,
          approvalId: command.approvalId,
          phase: release.phase,
          phaseEntry: release.phaseEntry,
          approverGroup: requirement.approverGroup,
          quorum: requirement.quorum,
        }),
      ];
    }

    case "approveRelease":
    case "rejectRelease": {
      const { release, model } = requireActive(state);
      const approval = release.approvals.find((a) => a.approvalId === command.approvalId);
      if (!approval)
        return refuse("approval.exists", `approval ${command.approvalId} not found`, "NOT_FOUND", command.approvalId);
      if (approval.phase !== release.phase || approval.phaseEntry !== release.phaseEntry)
        refuse("approval.current_phase", "the approval belongs to a phase the release has left");
      if (approval.status !== ApprovalStatus.PENDING)
        refuse("approval.pending", `the approval is already ${ApprovalStatus[approval.status]}`);
      const group = approval.approverGroup;
      const members = phaseDefinition(model, approval.phase)?.approvals.find((a) => a.approverGroup === group)?.members;
      // A model that names the members decides alone; otherwise the identity provider does, through
      // the token's groups claim. The approver role only admits the caller to the RPC.
      if (members?.length) {
        if (!members.includes(ctx.actor))
          refuse("approval.group_member", `${ctx.actor} is not a named member of ${group}`, "PERMISSION_DENIED", group);
      } else if (!ctx.groups.includes(group))
        refuse(
          "approval.group_member",
          `${ctx.actor} is not in group ${group} (token groups: ${ctx.groups.join(", ") || "none"})`,
          "PERMISSION_DENIED",
          group,
        );
      const involved = new Set([
        release.owner,
        release.coordinator,
        release.registeredBy,
        approval.requestedBy,
        ...approval.ineligibleApprovers,
      ]);
      if (involved.has(ctx.actor))
        refuse(
          "approval.separation_of_duties",
          `${ctx.actor} is (or was, while this approval was pending) the owner, coordinator or requester of this release and cannot approve it`,
          "PERMISSION_DENIED",
        );
      if (approval.votes.some((v) => v.approver === ctx.actor))
        refuse("approval.one_vote_per_approver", `${ctx.actor} has already voted`);
      if (command.kind === "rejectRelease") {
        if (!command.reason.trim()) refuse("approval.reason_required", "a rejection needs a reason");
        return [
          create(ev.ReleaseApprovalRejectedSchema, {
            releaseId,
            approvalId: approval.approvalId,
            approver: ctx.actor,
            reason: command.reason,
          }),
        ];
      }
      const granted = approval.votes.filter((v) => v.approved).length + 1;
      return [
        create(ev.ReleaseApprovalGrantedSchema, {
          releaseId,
          approvalId: approval.approvalId,
          approver: ctx.actor,
          comment: command.comment,
          quorumReached: granted >= approval.quorum,
        }),
      ];
    }

    case "addTask": {
      const { release } = requireActive(state);
      return [
        create(ev.ReleaseTaskAddedSchema, {
          releaseId,
          task: {
            taskId: command.taskId,
            phase: release.phase,
            phaseEntry: release.phaseEntry,
            name: command.name,
            required: command.required,
            fromModel: false,
            assignee: command.assignee,
            status: TaskStatus.OPEN,
            ...(command.dueAt ? { dueAt: ts(command.dueAt) } : {}),
          },
        }),
      ];
    }

    case "assignTask": {
      const { release } = requireActive(state);
      requireOpenTask(release, command.taskId);
      return [create(ev.ReleaseTaskAssignedSchema, { releaseId, taskId: command.taskId, assignee: command.assignee })];
    }

    case "startTask": {
      const { release } = requireActive(state);
      const task = requireOpenTask(release, command.taskId);
      if (task.status !== TaskStatus.OPEN) refuse("task.startable", `task ${command.taskId} is already started`);
      return [create(ev.ReleaseTaskStartedSchema, { releaseId, taskId: command.taskId })];
    }

    case "completeTask": {
      const { release } = requireActive(state);
      requireOpenTask(release, command.taskId);
      return [create(ev.ReleaseTaskCompletedSchema, { releaseId, taskId: command.taskId })];
    }

    case "cancelTask": {
      const { release } = requireActive(state);
      const task = requireOpenTask(release, command.taskId);
      if (task.required)
        refuse("task.required_not_cancellable", `task "${task.name}" is required and cannot be cancelled`);
      if (!command.reason.trim()) refuse("task.reason_required", "a reason is required");
      return [create(ev.ReleaseTaskCancelledSchema, { releaseId, taskId: command.taskId, reason: command.reason })];
    }

    case "linkChangeRequest": {
      const { release } = requireActive(state);
      if (release.linkedChangeRequestIds.includes(command.changeRequestId))
        refuse("change.not_linked", `change request ${command.changeRequestId} is already linked`, "ALREADY_EXISTS");
      return [create(ev.ReleaseChangeRequestLinkedSchema, { releaseId, changeRequestId: command.changeRequestId })];
    }

    case "unlinkChangeRequest": {
      const { release } = requireActive(state);
      if (!release.linkedChangeRequestIds.includes(command.changeRequestId))
        refuse(
          "change.linked",
          `change request ${command.changeRequestId} is not linked`,
          "NOT_FOUND",
          command.changeRequestId,
        );
      return [create(ev.ReleaseChangeRequestUnlinkedSchema, { releaseId, changeRequestId: command.changeRequestId })];
    }

    case "attachArtifact": {
      const { release } = requireActive(state);
      if (release.packageFrozen)
        refuse("package.frozen", "the package is frozen since the release left BUILD_AND_TEST");
      if (release.package.some((a) => a.artifactId === command.artifact.artifactId))
        refuse(
          "package.artifact_unique",
          `artifact ${command.artifact.artifactId} is already attached`,
          "ALREADY_EXISTS",
        );
      if (release.package.some((a) => a.name === command.artifact.name))
        refuse("package.one_version_per_artifact", `another version of ${command.artifact.name} is already attached`);
      return [create(ev.ReleaseArtifactAttachedSchema, { releaseId, artifact: command.artifact })];
    }

    case "detachArtifact": {
      const { release } = requireActive(state);
      if (release.packageFrozen)
        refuse("package.frozen", "the package is frozen since the release left BUILD_AND_TEST");
      if (!release.package.some((a) => a.artifactId === command.artifactId))
        refuse(
          "package.artifact_attached",
          `artifact ${command.artifactId} is not attached`,
          "NOT_FOUND",
          command.artifactId,
        );
      return [create(ev.ReleaseArtifactDetachedSchema, { releaseId, artifactId: command.artifactId })];
    }

    case "setBackOutPlan": {
      requireActive(state);
      return [create(ev.ReleaseBackOutPlanSetSchema, { releaseId, backOutPlan: command.backOutPlan })];
    }

    case "recordLogEntry": {
      requireActive(state);
      return [
        create(ev.ReleaseLogEntryRecordedSchema, {
          releaseId,
          entry: {
            entryId: command.entryId,
            kind: command.entryKind,
            text: command.text,
            recordedBy: ctx.actor,
            recordedAt: ts(ctx.now),
          },
        }),
      ];
    }

    case "recordReview": {
      const { release, model } = requireActive(state);
      if (nextPhase(model, release.phase) !== ReleasePhase.CLOSED)
        refuse(
          "review.in_review_phase",
          `the review is recorded in the phase before CLOSED, not ${phaseName(release.phase)}`,
        );
      return [
        create(ev.ReleaseReviewRecordedSchema, {
          releaseId,
          review: {
            outcome: command.outcome,
            lessonsLearned: command.lessonsLearned,
            followUpActions: command.followUpActions,
            reviewedBy: ctx.actor,
            reviewedAt: ts(ctx.now),
          },
        }),
      ];
    }

    case "markDeadlineMissed": {
      const { release } = requireActive(state);
      if (release.phaseEntry !== command.phaseEntry) refuse("deadline.phase_current", "the phase was left in time");
      if (!release.phaseDueAt) return refuse("deadline.exists", "the phase has no deadline");
      if (timestampDate(release.phaseDueAt) > ctx.now) refuse("deadline.passed", "the deadline has not passed yet");
      if (release.deadlineMisses.some((m) => m.phaseEntry === command.phaseEntry))
        refuse("deadline.missed_once", "the missed deadline was already reported");
      return [
        create(ev.ReleaseDeadlineMissedSchema, {
          releaseId,
          phase: release.phase,
          phaseEntry: release.phaseEntry,
          dueAt: release.phaseDueAt,
        }),
      ];
    }

    case "escalateDeadline": {
      const { release, model } = requireActive(state);
      if (release.phaseEntry !== command.phaseEntry) refuse("deadline.phase_current", "the phase was left meanwhile");
      const miss = release.deadlineMisses.find((m) => m.phaseEntry === command.phaseEntry);
      if (!miss?.dueAt) return refuse("deadline.missed_first", "the deadline was not reported missed");
      if (miss.escalated) refuse("deadline.escalated_once", "the missed deadline was already escalated");
      if (timestampDate(miss.dueAt).getTime() + durationMs(model.escalationGrace) > ctx.now.getTime())
        refuse("deadline.grace_passed", "the escalation grace period has not passed yet");
      return [
        create(ev.ReleaseDeadlineEscalatedSchema, {
          releaseId,
          phase: miss.phase,
          phaseEntry: miss.phaseEntry,
          dueAt: miss.dueAt,
        }),
      ];
    }
  }
}

/** When `release` entered its current phase entry, reset what belongs to the phase. */
function enterPhase(release: Release, phase: ReleasePhase, entry: number, due: Timestamp | undefined, at?: Timestamp) {
  release.phase = phase;
  release.phaseEntry = entry;
  release.phaseDueAt = due;
  release.phaseEnteredAt = at;
}

export function evolve(state: ReleaseState, event: ReleaseEvent): ReleaseState {
  const at = event.metadata?.occurredAt;
  if (event.$typeName === "rdm.release.v1.ReleaseRegistered") {
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
  if (!state.release) return state;
  const release = clone(ReleaseSchema, state.release);
  release.version = event.metadata?.streamVersion ?? release.version + 1n;
  const task = (taskId: string) => release.tasks.find((t) => t.taskId === taskId);
  switch (event.$typeName) {
    case "rdm.release.v1.ReleasePlanningUpdated": {
      const { metadata: _m, $typeName: _t, releaseId: _r, ...fields } = event;
      Object.assign(release, fields);
      // A coordinator named while an approval is pending stays unable to vote on it, even if
      // replaced again before voting.
      for (const approval of release.approvals) {
        const pending = approval.status === ApprovalStatus.PENDING;
        if (pending && release.coordinator && !approval.ineligibleApprovers.includes(release.coordinator))
          approval.ineligibleApprovers.push(release.coordinator);
      }
      break;
    }
    case "rdm.release.v1.ReleasePhaseAdvanced":
      enterPhase(release, event.toPhase, event.phaseEntry, event.phaseDueAt, at);
      break;
    case "rdm.release.v1.ReleasePhaseReworked":
      enterPhase(release, event.toPhase, event.phaseEntry, event.phaseDueAt, at);
      // A review is of the phase entry it was recorded in: after a rework the release is reviewed again.
      release.review = undefined;
      // Going back to (or before) BUILD_AND_TEST reopens the package for the rebuild.
      if (state.model && phaseIndex(state.model, event.toPhase) <= phaseIndex(state.model, ReleasePhase.BUILD_AND_TEST))
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
      break;
    case "rdm.release.v1.ReleaseApprovalGranted":
    case "rdm.release.v1.ReleaseApprovalRejected": {
      const approval = release.approvals.find((a) => a.approvalId === event.approvalId);
      if (!approval) break;
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
      break;
    }
    case "rdm.release.v1.ReleaseTaskAdded":
      if (event.task) release.tasks.push(create(ReleaseTaskSchema, event.task));
      break;
    case "rdm.release.v1.ReleaseTaskAssigned": {
      const t = task(event.taskId);
      if (t) t.assignee = event.assignee;
      break;
    }
    case "rdm.release.v1.ReleaseTaskStarted": {
      const t = task(event.taskId);
      if (t) t.status = TaskStatus.IN_PROGRESS;
      break;
    }
    case "rdm.release.v1.ReleaseTaskCompleted": {
      const t = task(event.taskId);
      if (t) t.status = TaskStatus.DONE;
      break;
    }
    case "rdm.release.v1.ReleaseTaskCancelled": {
      const t = task(event.taskId);
      if (t) t.status = TaskStatus.CANCELLED;
      break;
    }
    case "rdm.release.v1.ReleaseChangeRequestLinked":
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
    case "rdm.release.v1.ReleaseNotificationRequested":
      break;
  }
  return { model: state.model, release };
}

export const fold = (events: ReleaseEvent[], state = initialState()): ReleaseState => events.reduce(evolve, state);

/** Human-readable release key, e.g. REL-2026-0042 (sequence numbers per year; gaps allowed). */
export const releaseKey = (year: number, sequence: number) => `REL-${year}-${String(sequence).padStart(4, "0")}`;
