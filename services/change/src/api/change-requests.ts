import { randomUUID } from "node:crypto";
import { hasAnyRole } from "@rdm/auth";
import { ChangeType, type StandardChangeTemplate } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  AssessChangeResponseSchema,
  CancelChangeResponseSchema,
  RaiseChangeResponseSchema,
  SubmitChangeResponseSchema,
  UpdateChangeResponseSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import type pg from "pg";
import { standardChangeTemplates } from "../store/aggregates.js";

import { type ChangeHandlers, type ChangeRpcDeps, changeCommandRpc, changeDetails } from "./change-rpc.js";

/** Raising, editing, submitting, assessing and cancelling a change request. */
/** A standard change template as it is now (undefined: not in the catalog), read on `db`. */
async function templateNow(handler: ChangeRpcDeps["handler"], db: pg.PoolClient, templateId: string) {
  return (await handler.load(db, { aggregate: standardChangeTemplates, streamId: templateId })).state.template;
}

export function changeRequestHandlers(
  deps: ChangeRpcDeps,
): Pick<ChangeHandlers, "raiseChange" | "updateChange" | "submitChange" | "assessChange" | "cancelChange"> {
  const { handler, clock, keys } = deps;
  const { changeCommand, actor, M } = changeCommandRpc(deps);
  return {
    async raiseChange(request, ctx) {
      const changeRequestId = randomUUID();
      const details = changeDetails(request, clock());
      // A retry takes a key it does not use (keys may have gaps) and is answered by the handler.
      const key = await keys.next(clock().getUTCFullYear());
      const templateId = request.templateId;
      return changeCommand<typeof RaiseChangeResponseSchema, StandardChangeTemplate | undefined>(
        M.raiseChange,
        request,
        ctx,
        RaiseChangeResponseSchema,
        (template) => ({
          kind: "raiseChange",
          changeRequestId,
          key,
          requester: actor(ctx),
          type: request.type,
          ...details,
          linkedReleaseId: request.linkedReleaseId,
          templateId,
          template,
        }),
        {
          streamId: changeRequestId,
          newStream: true,
          // A standard change reads its template in the command's transaction; any other
          // change is group-committed with concurrent commands.
          ...(templateId ? { prepare: (client) => templateNow(handler, client, templateId) } : {}),
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
      return changeCommand(M.submitChange, request, ctx, SubmitChangeResponseSchema, async (_, { change }, tx) => ({
        kind: "submitChange",
        actor: actor(ctx),
        // A standard change is pre-authorized only while its template is in the catalog.
        ...(change?.type === ChangeType.STANDARD
          ? { template: await templateNow(handler, tx, change.templateId) }
          : {}),
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
        byChangeManager: hasAnyRole(ctx.principal, ["change-manager"]),
      }));
    },
  };
}
