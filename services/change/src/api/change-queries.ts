import { create } from "@bufbuild/protobuf";
import { NotFound } from "@rdm/grpc";
import { instantOf } from "@rdm/proto";
import { GetChangeResponseSchema, ListChangesResponseSchema } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { encodePageToken, isIsoTimestamp, isUuid, pageCursor, pageTokenScope } from "@rdm/runtime";
import { changeRequests } from "../store/aggregates.js";
import { listChanges } from "../store/read-model.js";

import { type ChangeHandlers, type ChangeRpcDeps, DEFAULT_PAGE_SIZE } from "./change-rpc.js";

/** Reading and listing change requests. */
export function changeQueryHandlers(deps: ChangeRpcDeps): Pick<ChangeHandlers, "getChange" | "listChanges"> {
  const { pool, handler } = deps;
  return {
    async getChange(request) {
      const streamId = request.changeRequestId;
      const { state } = await handler.load(pool, { aggregate: changeRequests, streamId });
      if (!state.change) throw new NotFound("change request", request.changeRequestId);
      return create(GetChangeResponseSchema, { change: state.change });
    },

    async listChanges(request) {
      const scope = pageTokenScope("change.ListChanges", request);
      const after = pageCursor(request.pageToken, scope, isIsoTimestamp, isUuid);
      const limit = request.pageSize || DEFAULT_PAGE_SIZE;
      const changes = await listChanges(
        pool,
        {
          states: request.states,
          types: request.types,
          ciId: request.ciId,
          window: boundsOf(request.window),
          linkedReleaseId: request.linkedReleaseId,
          text: request.text,
        },
        { after, limit: limit + 1 },
      );
      const page = changes.slice(0, limit);
      const last = page.at(-1);
      return create(ListChangesResponseSchema, {
        changes: page.map((row) => row.change),
        nextPageToken:
          changes.length > limit && last
            ? encodePageToken(scope, last.raisedAt.toISOString(), last.change.changeRequestId)
            : "",
      });
    },
  };
}

/** A window's bounds as instants; one left unset is open (a change without a window matches neither). */
function boundsOf(window: TimeWindow | undefined) {
  if (!window?.start && !window?.end) return undefined;
  return {
    ...(window.start ? { start: instantOf(window.start).getTime() } : {}),
    ...(window.end ? { end: instantOf(window.end).getTime() } : {}),
  };
}
