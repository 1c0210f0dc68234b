import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { requireActive, requireOpenTask } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function assignTask(command: ReleaseCommandOf<"assignTask">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  requireOpenTask(release, command.taskId);
  return [create(ev.ReleaseTaskAssignedSchema, { releaseId, taskId: command.taskId, assignee: command.assignee })];
}
