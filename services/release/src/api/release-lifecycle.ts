import { randomUUID } from "node:crypto";
import { NotFound } from "@rdm/grpc";
import type * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { loadChangeStates } from "../consumers/change-requests.js";
import { defaultModelName } from "../domain/models.js";
import { type ReleaseApiDeps, type ReleaseHandlers, releaseCommandRpc } from "./release-rpc.js";

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
  const { models, keys, clock } = deps;
  const { execute, cmd } = releaseCommandRpc(deps);
  return {
    async registerRelease(request, ctx) {
      // A retry takes a key it does not use (keys may have gaps) and is answered by the handler.
      const modelName = request.modelName || defaultModelName(request.type);
      const model = await models.get(modelName, request.modelVersion);
      if (!model)
        throw new NotFound("release model", `${modelName}${request.modelVersion ? ` v${request.modelVersion}` : ""}`);
      const key = await keys.next(clock().getUTCFullYear());
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
