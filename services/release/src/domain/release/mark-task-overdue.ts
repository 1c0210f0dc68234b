import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import { instantOf } from "@rdm/proto";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { refuse, requireActive, requireOpenTask } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

/** Reports a task still open after its due time, once; completing or cancelling it clears the flag. */
export function markTaskOverdue(
  command: ReleaseCommandOf<"markTaskOverdue">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  const task = requireOpenTask(release, command.taskId);
  if (!task.dueAt) return refuse("task_deadline.exists", "the task has no due time", undefined, command.taskId);
  if (instantOf(task.dueAt) > ctx.now)
    refuse("task_deadline.passed", "the task is not due yet", undefined, command.taskId);
  if (task.overdue)
    refuse("task_deadline.reported_once", "the overdue task was already reported", undefined, command.taskId);
  return [
    create(ev.ReleaseTaskOverdueSchema, { releaseId, taskId: task.taskId, assignee: task.assignee, dueAt: task.dueAt }),
  ];
}
