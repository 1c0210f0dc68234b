import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function addTask(command: ReleaseCommandOf<"addTask">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
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
        ...(command.dueAt ? { dueAt: command.dueAt } : {}),
      },
    }),
  ];
}
