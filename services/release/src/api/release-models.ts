import { create } from "@bufbuild/protobuf";
import { NotFound, requestFingerprint } from "@rdm/grpc";
import type { ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { createModelVersion } from "../store/model-store.js";
import { type ReleaseApiDeps, type ReleaseHandlers, releaseCommandRpc } from "./release-rpc.js";

/** Release models: versions are created, never edited. */
export function releaseModelHandlers(
  deps: ReleaseApiDeps,
): Pick<ReleaseHandlers, "createReleaseModel" | "getReleaseModel" | "listReleaseModels"> {
  const { handler, models } = deps;
  const { method, originOf } = releaseCommandRpc(deps);
  return {
    async createReleaseModel(request, ctx) {
      const created = await handler.handle(originOf(request, ctx), {
        ...createModelVersion(request.model as ReleaseModel),
        response: api.CreateReleaseModelResponseSchema,
        respond: ({ events }) => create(api.CreateReleaseModelResponseSchema, { model: events[0]?.model }),
        requestHash: requestFingerprint(method.createReleaseModel.input, request, ctx.principal.subject),
      });
      // Before the answer: a registration on this instance right after it sees the new version.
      models.invalidate(request.model?.name);
      return created;
    },

    async getReleaseModel(request) {
      const model = await models.get(request.name, request.version);
      if (!model)
        throw new NotFound("release model", `${request.name}${request.version ? ` v${request.version}` : ""}`);
      return create(api.GetReleaseModelResponseSchema, { model });
    },

    async listReleaseModels() {
      return create(api.ListReleaseModelsResponseSchema, { models: await models.listLatest() });
    },
  };
}
