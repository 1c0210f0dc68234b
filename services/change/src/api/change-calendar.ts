import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import {
  DeclareFreezeWindowResponseSchema,
  GetChangeCalendarResponseSchema,
  LiftFreezeWindowResponseSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { decideFreezeWindow } from "../domain/freeze-window.js";
import { freezeWindows } from "../store/aggregates.js";
import { calendar, saveFreezeWindow } from "../store/read-model.js";

import {
  CALENDAR_LOCK,
  type ChangeHandlers,
  type ChangeRpcDeps,
  changeCommandRpc,
  requireWindow,
} from "./change-rpc.js";

/** Freeze windows and the change calendar. */
export function changeCalendarHandlers(
  deps: ChangeRpcDeps,
): Pick<ChangeHandlers, "declareFreezeWindow" | "liftFreezeWindow" | "getChangeCalendar"> {
  const { pool } = deps;
  const { command, M } = changeCommandRpc(deps);
  return {
    async declareFreezeWindow(request, ctx) {
      const freezeWindowId = randomUUID();
      return command(M.declareFreezeWindow, request, ctx, {
        aggregate: freezeWindows,
        streamId: freezeWindowId,
        output: DeclareFreezeWindowResponseSchema,
        prepare: async (client) => {
          await client.query(CALENDAR_LOCK);
        },
        decide: (state) =>
          decideFreezeWindow(
            {
              kind: "declareFreeze",
              freezeWindowId,
              name: request.name,
              reason: request.reason,
              window: request.window as TimeWindow,
              scope: request.scope as NonNullable<typeof request.scope>,
            },
            state,
          ),
        project: async (client, state) => {
          if (state.freeze) await saveFreezeWindow(client, state.freeze);
        },
        respond: ({ after }) =>
          create(DeclareFreezeWindowResponseSchema, after.freeze ? { freezeWindow: after.freeze } : {}),
      });
    },

    async liftFreezeWindow(request, ctx) {
      return command(M.liftFreezeWindow, request, ctx, {
        aggregate: freezeWindows,
        streamId: request.freezeWindowId,
        output: LiftFreezeWindowResponseSchema,
        decide: (state) => decideFreezeWindow({ kind: "liftFreeze", reason: request.reason }, state),
        project: async (client, state) => {
          if (state.freeze) await saveFreezeWindow(client, state.freeze);
        },
        respond: ({ after }) =>
          create(LiftFreezeWindowResponseSchema, after.freeze ? { freezeWindow: after.freeze } : {}),
      });
    },

    async getChangeCalendar(request) {
      const { changes, freezes } = await calendar(pool, requireWindow(request.window, "window"));
      return create(GetChangeCalendarResponseSchema, { changes, freezeWindows: freezes });
    },
  };
}
