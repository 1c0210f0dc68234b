import { createHash } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { InvalidArgument } from "@rdm/grpc";
import {
  ConfigurationService,
  QuarantineArtifactResponseSchema,
  RetireArtifactResponseSchema,
  VerifyArtifactContentResponseSchema,
  VerifyArtifactResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { isUuid } from "@rdm/runtime";
import * as artifactAggregate from "../domain/artifact.js";
import {
  type ConfigurationApiDeps,
  type ConfigurationHandlers,
  configurationCommandRpc,
  identityOf,
} from "./configuration-rpc.js";

const M = ConfigurationService.method;

/** Verifying, quarantining and retiring artifacts. */
export function artifactVerificationHandlers(
  deps: ConfigurationApiDeps,
): Pick<ConfigurationHandlers, "verifyArtifact" | "verifyArtifactContent" | "quarantineArtifact" | "retireArtifact"> {
  const { onArtifact, verify } = configurationCommandRpc(deps);
  return {
    async verifyArtifact(request, ctx) {
      const identity = identityOf(ctx, M.verifyArtifact.input, request);
      const result = await verify(ctx, identity, request.artifactId, request.sha256, undefined);
      return create(VerifyArtifactResponseSchema, { result });
    },

    async verifyArtifactContent(requests, ctx) {
      const digest = createHash("sha256");
      let size = 0n;
      let first: { requestId: string; artifactId: string } | undefined;
      for await (const request of requests) {
        // request_id is checked here, not by a string.uuid rule (later messages leave it empty), so
        // it is lowercased here as the interceptor lowercases every UUID field.
        first ??= { requestId: request.requestId.toLowerCase(), artifactId: request.artifactId };
        digest.update(request.chunk);
        size += BigInt(request.chunk.length);
      }
      if (!first?.artifactId || !isUuid(first.requestId)) {
        throw new InvalidArgument([
          {
            field: "artifact_id",
            description: "the first message must carry artifact_id and a UUID request_id",
            reason: "required",
          },
        ]);
      }
      const actual = digest.digest("hex");
      // The hash of the content stands in for the request: a retry with the same bytes replays.
      const requestHash = createHash("sha256")
        .update(`${ctx.principal.subject}\u0000${first.artifactId}\u0000${actual}\u0000${size}`)
        .digest("hex");
      const result = await verify(ctx, { requestId: first.requestId, requestHash }, first.artifactId, actual, size);
      return create(VerifyArtifactContentResponseSchema, { result });
    },

    async quarantineArtifact(request, ctx) {
      return onArtifact(
        ctx,
        identityOf(ctx, M.quarantineArtifact.input, request),
        request.artifactId,
        QuarantineArtifactResponseSchema,
        { kind: "quarantineArtifact", reason: request.reason },
        (all) => create(QuarantineArtifactResponseSchema, { artifact: artifactAggregate.fold(all).artifact }),
      );
    },

    async retireArtifact(request, ctx) {
      return onArtifact(
        ctx,
        identityOf(ctx, M.retireArtifact.input, request),
        request.artifactId,
        RetireArtifactResponseSchema,
        { kind: "retireArtifact", reason: request.reason },
        (all) => create(RetireArtifactResponseSchema, { artifact: artifactAggregate.fold(all).artifact }),
      );
    },
  };
}
