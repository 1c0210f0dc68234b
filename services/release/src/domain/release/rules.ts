import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type DecisionContext, RuleViolation, type RuleViolationCode } from "@rdm/command-handler";
import { durationMs, phaseDefinition, type ReleaseState } from "@rdm/domain-kernel/release";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type { PhaseDefinition, ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import { type Release, ReleasePhase, ReleaseStatus, TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { isUuid } from "@rdm/runtime/process";

// The model lookups and the current approvals are kernel rules (the gateway's gates use them too).
export { currentApprovals, nextPhase, phaseDefinition, phaseIndex } from "@rdm/domain-kernel/release";

export const refuse = (
  rule: string,
  message: string,
  code: RuleViolationCode = "FAILED_PRECONDITION",
  /** What the rule is about, e.g. the approver group or a missing task's id; the release when not more specific. */
  subject = "release",
): never => {
  throw new RuleViolation(code, rule, message, { subject });
};

/** Two ids name the same thing: equal, or UUIDs that differ only in the case of their hex digits. */
export const sameId = (a: string, b: string) => a === b || (isUuid(a) && a.toLowerCase() === b.toLowerCase());

export const phaseName = (p: ReleasePhase) => ReleasePhase[p] ?? String(p);
export const ts = (d: Date) => timestampFromDate(d);

export function dueAt(definition: PhaseDefinition | undefined, now: Date): Timestamp | undefined {
  const ms = durationMs(definition?.deadline);
  return ms > 0 ? ts(new Date(now.getTime() + ms)) : undefined;
}

/** Tasks the model creates when `phase` starts its `entry`-th time. */
export function templateTasks(
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

export function requireRelease(state: ReleaseState): { release: Release; model: ReleaseModel } {
  if (!state.release || !state.model) return refuse("release.exists", "release not found", "NOT_FOUND", "");
  return { release: state.release, model: state.model };
}

export function requireActive(state: ReleaseState): { release: Release; model: ReleaseModel } {
  const found = requireRelease(state);
  if (found.release.status !== ReleaseStatus.ACTIVE)
    refuse("release.active", `release is ${ReleaseStatus[found.release.status]}`);
  return found;
}

export function requireTask(release: Release, taskId: string) {
  const task = release.tasks.find((t) => t.taskId === taskId);
  if (!task) return refuse("task.exists", `task ${taskId} not found`, "NOT_FOUND", taskId);
  return task;
}

export function requireOpenTask(release: Release, taskId: string) {
  const task = requireTask(release, taskId);
  if (task.status === TaskStatus.DONE || task.status === TaskStatus.CANCELLED)
    refuse("task.open", `task ${taskId} is already ${TaskStatus[task.status]}`);
  if (task.phase !== release.phase || task.phaseEntry !== release.phaseEntry)
    refuse("task.current_phase", `task ${taskId} belongs to a phase the release has left`);
  return task;
}

/**
 * Change states of an implementation under way or done: the change records its release's
 * implementation (the review reads it), so the release keeps it, and no other release takes it
 * while it lists it. A FAILED or CLOSED change may be let go (it covers nothing further: a
 * release sent back for rework links a new one).
 */
export const IMPLEMENTATION_STATES: ReadonlySet<string> = new Set(["IMPLEMENTING", "IMPLEMENTED", "REVIEWED"]);
