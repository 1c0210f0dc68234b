import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestImplementationAwaitingTasksSchema,
  ChangeRequestImplementedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { changeRuleViolation } from "../rule-violation.js";
import { envelope, openTasks, requireState } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function completeImplementation(command: C.CompleteImplementation, change: ChangeRequest): ChangeRequestEvent[] {
  requireState(change, "complete_implementation", [ChangeState.IMPLEMENTING]);
  const open = openTasks(change);
  if (open.length > 0 && command.awaitOpenTasks) {
    return [
      create(ChangeRequestImplementationAwaitingTasksSchema, {
        ...envelope(change, ChangeState.IMPLEMENTING),
        deploymentId: command.deploymentId ?? "",
        environment: command.environment ?? "",
        openTaskIds: open.map((task) => task.taskId),
      }),
    ];
  }
  if (open.length > 0) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.complete_implementation.tasks_done",
      `change ${change.key} has ${open.length} open task(s)`,
      open.map((task) => ({
        rule: "change.complete_implementation.tasks_done",
        subject: task.taskId,
        description: `task "${task.title}" is still open`,
      })),
    );
  }
  return [
    create(ChangeRequestImplementedSchema, {
      ...envelope(change, ChangeState.IMPLEMENTED),
      deploymentId: command.deploymentId ?? "",
      environment: command.environment ?? "",
    }),
  ];
}
