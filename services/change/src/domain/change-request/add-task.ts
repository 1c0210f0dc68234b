import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeTaskAddedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { changeRuleViolation } from "../rule-violation.js";
import { envelope, stateName, TERMINAL } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

/**
 * Tasks are the implementation's work (completing it requires them done): once it is over, a new
 * task could never gate anything, nor be completed after the change closes.
 */
const IMPLEMENTATION_OVER: readonly ChangeState[] = [
  ...TERMINAL,
  ChangeState.IMPLEMENTED,
  ChangeState.FAILED,
  ChangeState.REVIEWED,
];

export function addTask(command: C.AddTask, change: ChangeRequest): ChangeRequestEvent[] {
  if (IMPLEMENTATION_OVER.includes(change.state)) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.add_task.state",
      `cannot add a task to change ${change.key} in state ${stateName(change.state)}: its implementation is over`,
    );
  }
  if (change.tasks.some((task) => task.taskId === command.taskId)) {
    throw changeRuleViolation("ALREADY_EXISTS", "change.task.unique_id", `task ${command.taskId} exists`);
  }
  return [
    create(ChangeTaskAddedSchema, {
      ...envelope(change, change.state),
      taskId: command.taskId,
      title: command.title,
      assignee: command.assignee,
    }),
  ];
}
