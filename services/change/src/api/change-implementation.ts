import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  AddChangeTaskResponseSchema,
  CloseChangeResponseSchema,
  CompleteChangeImplementationResponseSchema,
  CompleteChangeTaskResponseSchema,
  FailChangeImplementationResponseSchema,
  ReviewChangeResponseSchema,
  StartChangeImplementationResponseSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";

import { type ChangeHandlers, type ChangeRpcDeps, changeCommandRpc } from "./change-rpc.js";

/** Implementing, reviewing and closing a change, and its tasks. */
export function changeImplementationHandlers(
  deps: ChangeRpcDeps,
): Pick<
  ChangeHandlers,
  | "startChangeImplementation"
  | "completeChangeImplementation"
  | "failChangeImplementation"
  | "reviewChange"
  | "closeChange"
  | "addChangeTask"
  | "completeChangeTask"
> {
  const { changeCommand, actor, M } = changeCommandRpc(deps);
  return {
    async startChangeImplementation(request, ctx) {
      return changeCommand(M.startChangeImplementation, request, ctx, StartChangeImplementationResponseSchema, () => ({
        kind: "startImplementation",
      }));
    },

    async completeChangeImplementation(request, ctx) {
      return changeCommand(
        M.completeChangeImplementation,
        request,
        ctx,
        CompleteChangeImplementationResponseSchema,
        () => ({ kind: "completeImplementation" }),
      );
    },

    async failChangeImplementation(request, ctx) {
      return changeCommand(M.failChangeImplementation, request, ctx, FailChangeImplementationResponseSchema, () => ({
        kind: "failImplementation",
        reason: request.reason,
      }));
    },

    async reviewChange(request, ctx) {
      return changeCommand(M.reviewChange, request, ctx, ReviewChangeResponseSchema, () => ({
        kind: "reviewChange",
        outcome: request.outcome,
        notes: request.notes,
      }));
    },

    async closeChange(request, ctx) {
      return changeCommand(M.closeChange, request, ctx, CloseChangeResponseSchema, () => ({ kind: "closeChange" }));
    },

    async addChangeTask(request, ctx) {
      const taskId = randomUUID();
      return changeCommand(
        M.addChangeTask,
        request,
        ctx,
        AddChangeTaskResponseSchema,
        () => ({ kind: "addTask", taskId, title: request.title, assignee: request.assignee }),
        {
          respond: ({ after }) =>
            create(AddChangeTaskResponseSchema, { ...(after.change ? { change: after.change } : {}), taskId }),
        },
      );
    },

    async completeChangeTask(request, ctx) {
      return changeCommand(M.completeChangeTask, request, ctx, CompleteChangeTaskResponseSchema, () => ({
        kind: "completeTask",
        taskId: request.taskId,
        by: actor(ctx),
      }));
    },
  };
}
