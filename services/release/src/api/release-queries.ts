import { create } from "@bufbuild/protobuf";
import { type Timestamp, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { NotFound } from "@rdm/grpc";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { loadChangeStates } from "../consumers/change-requests.js";
import { gateConditions, nextPhase } from "../domain/release.js";
import { decodeReleaseEvent } from "../store/event-codec.js";
import { readRelease } from "../store/releases.js";
import type { ReleaseApiDeps, ReleaseHandlers } from "./release-rpc.js";

/** Reading one release: its state, history and gate. */
export function releaseQueryHandlers(
  deps: ReleaseApiDeps,
): Pick<ReleaseHandlers, "getRelease" | "getReleaseHistory" | "getReleaseGate"> {
  const { store, pool, handler } = deps;
  return {
    async getRelease(request) {
      const state = await readRelease(handler, pool, request.releaseId);
      if (!state.release) throw new NotFound("release", request.releaseId);
      return create(api.GetReleaseResponseSchema, { release: state.release });
    },

    async getReleaseHistory(request) {
      const recorded = await store.readStream(request.releaseId);
      if (!recorded.length) throw new NotFound("release", request.releaseId);
      return create(api.GetReleaseHistoryResponseSchema, {
        entries: recorded.map((r) => {
          const event = decodeReleaseEvent(r) as {
            reason?: unknown;
            deployment?: { reason: string };
            metadata?: { occurredAt?: Timestamp };
          };
          return {
            eventType: r.type,
            // When it happened in the domain (the service clock), as the gateway's history shows it.
            occurredAt: event.metadata?.occurredAt ?? timestampFromDate(r.recordedAt),
            actor: String(r.metadata.actor ?? ""),
            // A deviation's reason is its deployment's (why it failed or was rolled back).
            reason: typeof event.reason === "string" ? event.reason : (event.deployment?.reason ?? ""),
            version: BigInt(r.version),
            requestId: String(r.metadata.requestId ?? ""),
            summary: r.type.replace(/^rdm\.release\.v1\./, ""),
            eventId: r.eventId,
            correlationId: String(r.metadata.correlationId ?? ""),
            causationId: String(r.metadata.causationId ?? ""),
          };
        }),
      });
    },

    async getReleaseGate(request) {
      const state = await readRelease(handler, pool, request.releaseId);
      const { release, model } = state;
      if (!release || !model) throw new NotFound("release", request.releaseId);
      const conditions = gateConditions(state, await loadChangeStates(pool, release));
      return create(api.GetReleaseGateResponseSchema, {
        phase: release.phase,
        nextPhase: nextPhase(model, release.phase) ?? ReleasePhase.UNSPECIFIED,
        conditions,
        open: conditions.every((c) => c.met),
      });
    },
  };
}
