import { create } from "@bufbuild/protobuf";
import { NotFound, requestFingerprint } from "@rdm/grpc";
import {
  ConfigurationService,
  GetArtifactResponseSchema,
  ListArtifactsResponseSchema,
  RegisterArtifactResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { isIsoTimestamp, pageTokenScope } from "@rdm/runtime";
import type { ArtifactEvent } from "../domain/artifact.js";
import * as artifactAggregate from "../domain/artifact.js";
import { saveArtifactRow } from "../store/query-tables.js";
import { artifactIdByNameVersion, findArtifacts, listArtifacts } from "../store/read-model.js";
import {
  type ConfigurationApiDeps,
  type ConfigurationHandlers,
  configurationCommandRpc,
  decodeCursor,
  encodeCursor,
  newArtifactId,
} from "./configuration-rpc.js";

/** Registering, reading and listing artifacts. */
export function artifactHandlers(
  deps: ConfigurationApiDeps,
): Pick<ConfigurationHandlers, "registerArtifact" | "getArtifact" | "listArtifacts"> {
  const { pool } = deps;
  const { execute } = configurationCommandRpc(deps);
  return {
    async registerArtifact(request, ctx) {
      const requestHash = requestFingerprint(
        ConfigurationService.method.registerArtifact.input,
        request,
        ctx.principal.subject,
      );
      // Decided on the stream of whatever is registered under this name and version.
      let artifactId = "";
      return execute<ArtifactEvent, typeof RegisterArtifactResponseSchema>(ctx, request.requestId, {
        streamId: async (db) => {
          artifactId = (await artifactIdByNameVersion(db, request.name, request.version)) ?? newArtifactId();
          return artifactId;
        },
        decide: (history) =>
          artifactAggregate.decide(
            {
              kind: "registerArtifact",
              artifactId,
              name: request.name,
              version: request.version,
              sha256: request.sha256,
              sizeBytes: request.sizeBytes,
              mediaUri: request.mediaUri,
              dependencies: request.dependencies,
            },
            artifactAggregate.fold(history),
          ),
        respond: ({ after, events }) =>
          create(RegisterArtifactResponseSchema, {
            artifact: artifactAggregate.fold(after).artifact,
            created: events.length > 0,
          }),
        project: async (tx, { after }) => {
          await saveArtifactRow(tx, after);
        },
        response: RegisterArtifactResponseSchema,
        requestHash,
      });
    },

    async getArtifact(request) {
      const [artifact] = await findArtifacts(pool, [request.artifactId]);
      if (!artifact) throw new NotFound("artifact", request.artifactId);
      return create(GetArtifactResponseSchema, { artifact });
    },

    async listArtifacts(request) {
      const scope = pageTokenScope("configuration.ListArtifacts", request);
      const { artifacts, next } = await listArtifacts(pool, {
        name: request.name,
        status: request.status,
        pageSize: request.pageSize || 100,
        after: decodeCursor(request.pageToken, scope, isIsoTimestamp),
      });
      return create(ListArtifactsResponseSchema, { artifacts, nextPageToken: encodeCursor(scope, next) });
    },
  };
}
