import { randomUUID } from "node:crypto";
import {
  AssessChangeResponseSchema,
  CancelChangeResponseSchema,
  RaiseChangeResponseSchema,
  SubmitChangeResponseSchema,
  UpdateChangeResponseSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { changeKey } from "../domain/change-request.js";
import { standardChangeTemplates } from "../store/aggregates.js";
import { nextChangeKeySequence } from "../store/read-model.js";

import {
  type ChangeHandlers,
  type ChangeRpcDeps,
  changeCommandRpc,
  changeDetails,
  type RaisePreparation,
} from "./change-rpc.js";

/** Raising, editing, submitting, assessing and cancelling a change request. */
export function changeRequestHandlers(
  deps: ChangeRpcDeps,
): Pick<ChangeHandlers, "raiseChange" | "updateChange" | "submitChange" | "assessChange" | "cancelChange"> {
  const { handler, clock } = deps;
  const { changeCommand, actor, M } = changeCommandRpc(deps);
  return {
    async raiseChange(request, ctx) {
      const changeRequestId = randomUUID();
      const details = changeDetails(request, clock());
      return changeCommand<typeof RaiseChangeResponseSchema, RaisePreparation>(
        M.raiseChange,
        request,
        ctx,
        RaiseChangeResponseSchema,
        ({ key, template }) => ({
          kind: "raiseChange",
          changeRequestId,
          key,
          requester: actor(ctx),
          type: request.type,
          ...details,
          linkedReleaseId: request.linkedReleaseId.toLowerCase(),
          templateId: request.templateId.toLowerCase(),
          template,
        }),
        {
          streamId: changeRequestId,
          prepare: async (client) => {
            const year = clock().getUTCFullYear();
            const key = changeKey(year, await nextChangeKeySequence(client, year));
            const template = request.templateId
              ? (
                  await handler.load(client, {
                    aggregate: standardChangeTemplates,
                    streamId: request.templateId.toLowerCase(),
                  })
                ).state.template
              : undefined;
            return { key, template };
          },
        },
      );
    },

    async updateChange(request, ctx) {
      const details = changeDetails(request, clock());
      return changeCommand(M.updateChange, request, ctx, UpdateChangeResponseSchema, () => ({
        kind: "updateChange",
        ...details,
      }));
    },

    async submitChange(request, ctx) {
      return changeCommand(M.submitChange, request, ctx, SubmitChangeResponseSchema, () => ({
        kind: "submitChange",
        actor: actor(ctx),
      }));
    },

    async assessChange(request, ctx) {
      return changeCommand(M.assessChange, request, ctx, AssessChangeResponseSchema, () => ({
        kind: "assessChange",
        impact: request.impact,
        urgency: request.urgency,
        requiredApprovals: request.requiredApprovals,
        notes: request.notes,
      }));
    },

    async cancelChange(request, ctx) {
      return changeCommand(M.cancelChange, request, ctx, CancelChangeResponseSchema, () => ({
        kind: "cancelChange",
        reason: request.reason,
        actor: actor(ctx),
        byChangeManager: ctx.principal.roles.includes("change-manager"),
      }));
    },
  };
}
