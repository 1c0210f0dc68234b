import { randomUUID } from "node:crypto";
import { NotFound, requestFingerprint } from "@rdm/grpc";
import type * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { defaultModelName } from "../domain/models.js";
import {
  loadChangeStates,
  nextReleaseKey,
  type ReleaseApiDeps,
  type ReleaseHandlers,
  releaseCommandRpc,
} from "./release-rpc.js";

/** Registering a release and moving it through its phases. */
export function releaseLifecycleHandlers(
  deps: ReleaseApiDeps,
): Pick<
  ReleaseHandlers,
  | "registerRelease"
  | "updateReleasePlanning"
  | "advanceReleasePhase"
  | "reworkRelease"
  | "abandonRelease"
  | "closeRelease"
> {
  const { pool, handler, models, clock } = deps;
  const { method, execute, cmd } = releaseCommandRpc(deps);
  return {
    async registerRelease(request, ctx) {
      // A retry is answered before a model is looked up and a key taken.
      const replayed = await handler.replay(request.requestId, {
        response: method.registerRelease.output,
        requestHash: requestFingerprint(method.registerRelease.input, request),
      });
      if (replayed) return replayed;
      const modelName = request.modelName || defaultModelName(request.type);
      const model = await models.get(modelName, request.modelVersion);
      if (!model)
        throw new NotFound("release model", `${modelName}${request.modelVersion ? ` v${request.modelVersion}` : ""}`);
      const key = await nextReleaseKey(pool, clock().getUTCFullYear());
      const releaseId = randomUUID();
      return execute("registerRelease", { ...request, releaseId }, ctx, () => ({
        kind: "registerRelease",
        releaseId,
        key,
        title: request.title,
        description: request.description,
        type: request.type,
        category: request.category,
        owner: request.owner,
        coordinator: request.coordinator,
        stakeholders: request.stakeholders,
        risk: request.risk,
        plannedWindow: request.plannedWindow,
        model,
      }));
    },

    updateReleasePlanning: cmd("updateReleasePlanning", (r: api.UpdateReleasePlanningRequest) => ({
      kind: "updatePlanning",
      title: r.title,
      description: r.description,
      category: r.category,
      coordinator: r.coordinator,
      stakeholders: r.stakeholders,
      risk: r.risk,
      plannedWindow: r.plannedWindow,
    })),
    advanceReleasePhase: cmd("advanceReleasePhase", async (r: api.AdvanceReleasePhaseRequest, state, tx) => ({
      kind: "advancePhase",
      fromPhase: r.fromPhase,
      changes: await loadChangeStates(tx, state.release),
    })),
    reworkRelease: cmd("reworkRelease", (r: api.ReworkReleaseRequest) => ({
      kind: "reworkRelease",
      toPhase: r.toPhase,
      reason: r.reason,
    })),
    abandonRelease: cmd("abandonRelease", (r: api.AbandonReleaseRequest) => ({
      kind: "abandonRelease",
      reason: r.reason,
    })),
    closeRelease: cmd("closeRelease", async (_r: api.CloseReleaseRequest, state, tx) => ({
      kind: "closeRelease",
      changes: await loadChangeStates(tx, state.release),
    })),
  };
}
