import { create } from "@bufbuild/protobuf";
import {
  ApproveChangeResponseSchema,
  RejectChangeResponseSchema,
  ScheduleChangeResponseSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { bookedChangesOverlapping, freezesOverlapping } from "../store/read-model.js";

import {
  CALENDAR_LOCK,
  type ChangeHandlers,
  type ChangeRpcDeps,
  changeCommandRpc,
  requireWindow,
  type SchedulePreparation,
} from "./change-rpc.js";

/** The board's votes and scheduling an authorized change. */
export function changeApprovalHandlers(
  deps: ChangeRpcDeps,
): Pick<ChangeHandlers, "approveChange" | "rejectChange" | "scheduleChange"> {
  const { boardGroups } = deps;
  const { changeCommand, actor, M } = changeCommandRpc(deps);
  return {
    async approveChange(request, ctx) {
      return changeCommand(M.approveChange, request, ctx, ApproveChangeResponseSchema, () => ({
        kind: "approveChange",
        approver: actor(ctx),
        approverGroups: ctx.principal.groups,
        boardGroups,
        comment: request.comment,
      }));
    },

    async rejectChange(request, ctx) {
      return changeCommand(M.rejectChange, request, ctx, RejectChangeResponseSchema, () => ({
        kind: "rejectChange",
        approver: actor(ctx),
        approverGroups: ctx.principal.groups,
        boardGroups,
        reason: request.reason,
      }));
    },

    async scheduleChange(request, ctx) {
      const window = requireWindow(request.window, "window");
      return changeCommand<typeof ScheduleChangeResponseSchema, SchedulePreparation>(
        M.scheduleChange,
        request,
        ctx,
        ScheduleChangeResponseSchema,
        ({ freezes, otherChanges }) => ({
          kind: "scheduleChange",
          window: request.window as TimeWindow,
          strict: request.strict,
          freezeOverrideJustification: request.freezeOverrideJustification,
          freezes,
          otherChanges,
        }),
        {
          prepare: async (client) => {
            await client.query(CALENDAR_LOCK);
            return {
              freezes: await freezesOverlapping(client, window, false),
              otherChanges: await bookedChangesOverlapping(client, window),
            };
          },
          respond: ({ after }, { freezes }) => {
            const change = after.change;
            return create(ScheduleChangeResponseSchema, {
              ...(change ? { change } : {}),
              collisions: change?.collisions ?? [],
              overriddenFreezes: freezes.filter((f) => change?.overriddenFreezeIds.includes(f.freezeWindowId)),
            });
          },
        },
      );
    },
  };
}
