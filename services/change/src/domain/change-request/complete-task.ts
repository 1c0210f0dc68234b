import { create } from "@bufbuild/protobuf";
import { RuleViolation } from "@rdm/command-handler";
import { type ChangeRequest, ChangeState, ChangeTaskState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeTaskCompletedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { changeRuleViolation } from "../rule-violation.js";
import { implemented } from "./complete-implementation.js";
import { envelope, openTasks, stateName, TERMINAL } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function completeTask(command: C.CompleteTask, change: ChangeRequest): ChangeRequestEvent[] {
  const task = change.tasks.find((t) => t.taskId === command.taskId);
  if (!task) {
    throw new RuleViolation("NOT_FOUND", "change.task.exists", `change ${change.key} has no task ${command.taskId}`, {
      subject: command.taskId,
      resourceType: "change task",
    });
  }
  if (TERMINAL.includes(change.state)) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.complete_task.state",
      `cannot complete a task of change ${change.key} in state ${stateName(change.state)}`,
    );
  }
  if (task.state !== ChangeTaskState.OPEN) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.complete_task.task_open",
      `task "${task.title}" is ${ChangeTaskState[task.state]}, not OPEN`,
    );
  }
  const completed = create(ChangeTaskCompletedSchema, {
    ...envelope(change, change.state),
    taskId: command.taskId,
    completedBy: command.by,
  });
  // The last open task of a change whose deployment succeeded meanwhile completes its implementation.
  const awaited = change.state === ChangeState.IMPLEMENTING && change.awaitingTasksDeploymentId !== "";
  if (!awaited || openTasks(change).some((t) => t.taskId !== task.taskId)) return [completed];
  return [
    completed,
    implemented(change, {
      deploymentId: change.awaitingTasksDeploymentId,
      environment: change.awaitingTasksEnvironment,
    }),
  ];
}
