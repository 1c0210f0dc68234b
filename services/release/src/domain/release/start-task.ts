import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { refuse, requireActive, requireOpenTask } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function startTask(command: ReleaseCommandOf<"startTask">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  const task = requireOpenTask(release, command.taskId);
  if (task.status !== TaskStatus.OPEN) refuse("task.startable", `task ${command.taskId} is already started`);
  return [create(ev.ReleaseTaskStartedSchema, { releaseId, taskId: command.taskId })];
}
