import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestEnvironmentImplementedSchema,
  ChangeRequestImplementationAwaitingTasksSchema,
  ChangeRequestImplementedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { changeRuleViolation } from "../rule-violation.js";
import { envelope, openTasks, requireState } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

/** The change implemented, by the deployment named (if any). */
export const implemented = (change: ChangeRequest, by: { deploymentId?: string; environment?: string }) =>
  create(ChangeRequestImplementedSchema, {
    ...envelope(change, ChangeState.IMPLEMENTED),
    deploymentId: by.deploymentId ?? "",
    environment: by.environment ?? "",
  });

/**
 * A deployment's success in one of several environments the change names, while others remain:
 * the change records it and stays IMPLEMENTING (the same environment again adds nothing).
 * Undefined when this success implements the change: the last one it needs, or production's when
 * no other production environment it names remains (a release's deployments end with
 * production's success, so one named after it never comes), or when no environment is named;
 * nothing for an environment the change does not name.
 */
function environmentImplemented(command: C.CompleteImplementation, change: ChangeRequest) {
  const environment = command.environment;
  if (!environment || change.environments.length < 2) return undefined;
  // None of its environments: no step of its implementation (production's implemented it, as ever).
  if (!change.environments.includes(environment)) return command.production ? undefined : [];
  const remaining = change.environments
    .filter((e) => e !== environment && !change.implementedEnvironments.includes(e))
    .filter((e) => !command.production || command.productionEnvironments?.includes(e));
  if (remaining.length === 0) return undefined;
  if (change.implementedEnvironments.includes(environment)) return [];
  return [
    create(ChangeRequestEnvironmentImplementedSchema, {
      ...envelope(change, ChangeState.IMPLEMENTING),
      deploymentId: command.deploymentId ?? "",
      environment,
      remainingEnvironments: remaining,
    }),
  ];
}

export function completeImplementation(command: C.CompleteImplementation, change: ChangeRequest): ChangeRequestEvent[] {
  requireState(change, "complete_implementation", [ChangeState.IMPLEMENTING]);
  const partial = environmentImplemented(command, change);
  if (partial) return partial;
  const open = openTasks(change);
  if (open.length === 0) return [implemented(change, command)];
  if (command.awaitOpenTasks) {
    // The same success again (a replay) adds nothing; another deployment's success is awaited instead.
    if (command.deploymentId && change.awaitingTasksDeploymentId === command.deploymentId) return [];
    return [
      create(ChangeRequestImplementationAwaitingTasksSchema, {
        ...envelope(change, ChangeState.IMPLEMENTING),
        deploymentId: command.deploymentId ?? "",
        environment: command.environment ?? "",
        openTaskIds: open.map((task) => task.taskId),
      }),
    ];
  }
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
