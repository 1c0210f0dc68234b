import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { refuse, requireActive, requireOpenTask } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function cancelTask(command: ReleaseCommandOf<"cancelTask">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  const task = requireOpenTask(release, command.taskId);
  if (task.required) refuse("task.required_not_cancellable", `task "${task.name}" is required and cannot be cancelled`);
  if (!command.reason.trim()) refuse("task.reason_required", "a reason is required");
  return [create(ev.ReleaseTaskCancelledSchema, { releaseId, taskId: command.taskId, reason: command.reason })];
}
