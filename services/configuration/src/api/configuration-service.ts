import { createHash, randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import type { Role } from "@rdm/auth";
import { type ClientCommand, type CommandHandler, type CommandOrigin, RuleViolation } from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import { type CallContext, InvalidArgument, NotFound, requestFingerprint, type ServiceRegistration } from "@rdm/grpc";
import { ConfigurationItemChangeSchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  AddRelationshipResponseSchema,
  ChangeConfigurationItemStatusResponseSchema,
  ConfigurationService,
  GetArtifactResponseSchema,
  GetBaselineResponseSchema,
  GetConfigurationItemHistoryResponseSchema,
  GetConfigurationItemResponseSchema,
  ListArtifactsResponseSchema,
  ListConfigurationItemsResponseSchema,
  ListRelationshipsResponseSchema,
  QuarantineArtifactResponseSchema,
  RegisterArtifactResponseSchema,
  RegisterConfigurationItemResponseSchema,
  RemoveRelationshipResponseSchema,
  RetireArtifactResponseSchema,
  UpdateConfigurationItemResponseSchema,
  type VerificationResult,
  VerificationResultSchema,
  VerifyArtifactContentResponseSchema,
  VerifyArtifactResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { decodePageToken, encodePageToken, isIsoTimestamp, isUuid } from "@rdm/runtime";
import type pg from "pg";
import type { ArtifactCommand, ArtifactEvent } from "../domain/artifact.js";
import * as artifactAggregate from "../domain/artifact.js";
import * as baselineAggregate from "../domain/baseline.js";
import { type BaselineEvent, baselineStreamId } from "../domain/baseline.js";
import * as itemAggregate from "../domain/configuration-item.js";
import {
  type ConfigurationItemCommand,
  type ConfigurationItemEvent,
  describeChange,
} from "../domain/configuration-item.js";
import { checkPackageConsistency } from "../domain/consistency.js";
import type { ConfigurationEvent } from "../store/event-codec.js";
import {
  artifactIdByNameVersion,
  findArtifacts,
  findBaseline,
  findConfigurationItem,
  listArtifacts,
  listConfigurationItems,
  relationshipsOf,
  saveArtifact,
  saveConfigurationItem,
  saveRelationship,
} from "../store/read-model.js";
import { historyOf, readHistory } from "../store/streams.js";
import { analyzeImpactHandler } from "./analyze-impact.js";

export interface ConfigurationApiDeps {
  store: EventStore;
  pool: pg.Pool;
  handler: CommandHandler<ConfigurationEvent>;
}

const READERS: Role[] = [
  "viewer",
  "release-manager",
  "release-coordinator",
  "approver",
  "change-manager",
  "deployer",
  "config-manager",
];
const CONFIG_MANAGERS: Role[] = ["config-manager"];

const nanos = (t: Timestamp) => t.seconds * 1_000_000_000n + BigInt(t.nanos);
/** Events that had happened at `asOf` (all of them without one). */
function upTo<E extends { metadata?: { occurredAt?: Timestamp } }>(events: E[], asOf: Timestamp | undefined): E[] {
  if (!asOf) return events;
  const limit = nanos(asOf);
  return events.filter((event) => event.metadata?.occurredAt && nanos(event.metadata.occurredAt) <= limit);
}

const encodeCursor = (cursor: [string, string] | undefined) => (cursor ? encodePageToken(...cursor) : "");
/** No part of a token holds a NUL: the query compares them as text, which cannot. */
const noNul = (part: string) => !part.includes("\u0000");
/**
 * ListArtifacts' sort key as its cursor holds it, in years 0001-9999 (PostgreSQL refuses year 0
 * and toISOString's six-digit years).
 */
const isArtifactSortKey = (key: string) => /^(?!0000)\d{4}-/.test(key) && isIsoTimestamp(key);
/** Only what encodeCursor wrote gets through, so a forged token is INVALID_ARGUMENT rather than a query PostgreSQL fails on. */
function decodeCursor(token: string, isSortKey: (key: string) => boolean = noNul): [string, string] | undefined {
  if (!token) return undefined;
  const cursor = decodePageToken(token, isSortKey, noNul);
  if (cursor) return cursor;
  throw new InvalidArgument([
    { field: "page_token", description: "not a page token from this API", reason: "invalid" },
  ]);
}

const ciStreamId = (ciId: string) => ciId;
/**
 * CI and artifact ids are bare stream ids, so an id may name a stream of another kind: a stream
 * is a CI's (an artifact's) only if it opens with that registration.
 */
const isItemStream = (history: ConfigurationEvent[]) =>
  history[0]?.$typeName === "rdm.configuration.v1.ConfigurationItemRegistered";
const isArtifactStream = (history: ConfigurationEvent[]) =>
  history[0]?.$typeName === "rdm.configuration.v1.ArtifactRegistered";
/** A stream of another kind under the id: refused as if nothing were there. */
const notFound = (resourceType: string, id: string) =>
  new RuleViolation("NOT_FOUND", "stream.kind", `${resourceType} ${id} not found`, { subject: id, resourceType });
const newCiId = () => `ci-${randomUUID()}`;
const newArtifactId = () => `artifact-${randomUUID()}`;

/** Names sort as people read them (the default locale's collation). */
const _byName = new Intl.Collator();

export function configurationServiceHandlers({
  store,
  pool,
  handler,
}: ConfigurationApiDeps): ServiceRegistration<(typeof ConfigurationService)["method"]> {
  const analyzeImpact = analyzeImpactHandler(pool);
  const originOf = (ctx: CallContext, requestId: string): CommandOrigin => ({
    actor: ctx.principal.subject,
    groups: ctx.principal.groups,
    requestId,
    traceparent: ctx.traceparent,
  });
  /** A command decided on a stream's history, through the command handler. */
  const execute = <E extends ConfigurationEvent, R extends DescMessage>(
    ctx: CallContext,
    requestId: string,
    command: Omit<ClientCommand<E[], E, R>, "aggregate">,
  ) => handler.handle(originOf(ctx, requestId), { aggregate: historyOf<E>(), ...command });

  /** A command on one configuration item's stream; answers with the item afterwards. */
  const onItem = async (
    ctx: CallContext,
    requestId: string,
    requestHash: string,
    ciId: string,
    /** Reads it needs go through `tx`, the command's transaction. */
    command: (tx: pg.PoolClient) => Promise<ConfigurationItemCommand> | ConfigurationItemCommand,
  ) => {
    const response = await execute<ConfigurationItemEvent, typeof GetConfigurationItemResponseSchema>(ctx, requestId, {
      streamId: ciStreamId(ciId),
      decide: async (history, _ctx, tx) => {
        // Empty: a registration's new stream (any other command finds no item).
        if (history.length > 0 && !isItemStream(history)) throw notFound("configuration item", ciId);
        return itemAggregate.decide(await command(tx), itemAggregate.fold(history));
      },
      respond: ({ after }) => create(GetConfigurationItemResponseSchema, { item: itemAggregate.fold(after).item }),
      project: async (tx, { after, events }) => {
        const item = itemAggregate.fold(after).item;
        if (item) await saveConfigurationItem(tx, item);
        for (const event of events) {
          if (event.$typeName === "rdm.configuration.v1.RelationshipAdded" && event.relationship)
            await saveRelationship(tx, event.relationship, true);
          if (event.$typeName === "rdm.configuration.v1.RelationshipRemoved" && event.relationship)
            await saveRelationship(tx, event.relationship, false);
        }
      },
      response: GetConfigurationItemResponseSchema,
      requestHash,
    });
    return response.item;
  };

  /** A command on one artifact's stream. */
  const onArtifact = <R extends DescMessage>(
    ctx: CallContext,
    requestId: string,
    requestHash: string,
    artifactId: string,
    responseSchema: R,
    command: ArtifactCommand,
    respond: (all: ArtifactEvent[], recorded: ArtifactEvent[]) => MessageShape<R>,
  ) =>
    execute<ArtifactEvent, R>(ctx, requestId, {
      streamId: artifactId,
      decide: (history) => {
        if (!isArtifactStream(history)) throw notFound("artifact", artifactId);
        return artifactAggregate.decide(command, artifactAggregate.fold(history));
      },
      respond: ({ after, events }) => respond(after, events),
      project: async (tx, { after }) => {
        const artifact = artifactAggregate.fold(after).artifact;
        if (artifact) await saveArtifact(tx, artifact);
      },
      response: responseSchema,
      requestHash,
    });

  const verificationResult = (all: ArtifactEvent[], recorded: ArtifactEvent[], size?: bigint): VerificationResult => {
    const artifact = artifactAggregate.fold(all).artifact;
    const outcome = recorded[0];
    const actual =
      outcome?.$typeName === "rdm.configuration.v1.ArtifactVerified"
        ? outcome.sha256
        : outcome?.$typeName === "rdm.configuration.v1.ArtifactQuarantined"
          ? outcome.actualSha256
          : "";
    return create(VerificationResultSchema, {
      matches: outcome?.$typeName === "rdm.configuration.v1.ArtifactVerified",
      expectedSha256: artifact?.sha256 ?? "",
      actualSha256: actual,
      actualSizeBytes: size ?? 0n,
      artifact,
    });
  };

  async function verify(
    ctx: CallContext,
    requestId: string,
    requestHash: string,
    artifactId: string,
    actualSha256: string,
    actualSizeBytes: bigint | undefined,
  ): Promise<VerificationResult> {
    const method = actualSizeBytes === undefined ? "digest" : "bytes";
    const response = await onArtifact(
      ctx,
      requestId,
      requestHash,
      artifactId,
      VerifyArtifactResponseSchema,
      { kind: "verifyArtifact", actualSha256, actualSizeBytes, method },
      (all, recorded) =>
        create(VerifyArtifactResponseSchema, { result: verificationResult(all, recorded, actualSizeBytes) }),
    );
    return response.result ?? create(VerificationResultSchema);
  }

  return {
    service: ConfigurationService,
    roles: {
      registerConfigurationItem: CONFIG_MANAGERS,
      updateConfigurationItem: CONFIG_MANAGERS,
      changeConfigurationItemStatus: CONFIG_MANAGERS,
      getConfigurationItem: READERS,
      listConfigurationItems: READERS,
      getConfigurationItemHistory: READERS,
      addRelationship: CONFIG_MANAGERS,
      removeRelationship: CONFIG_MANAGERS,
      listRelationships: READERS,
      analyzeImpact: READERS,
      registerArtifact: ["config-manager", "release-manager", "deployer"],
      getArtifact: READERS,
      listArtifacts: READERS,
      verifyArtifact: ["config-manager", "deployer"],
      verifyArtifactContent: ["config-manager", "deployer"],
      quarantineArtifact: CONFIG_MANAGERS,
      retireArtifact: CONFIG_MANAGERS,
      checkPackageConsistency: READERS,
      getBaseline: READERS,
    },
    handlers: {
      async registerConfigurationItem(request, ctx) {
        const hash = requestFingerprint(ConfigurationService.method.registerConfigurationItem.input, request);
        const ciId = newCiId();
        const item = await onItem(ctx, request.requestId, hash, ciId, () => ({
          kind: "registerConfigurationItem",
          ciId,
          name: request.name,
          type: request.type,
          owner: request.owner,
          status: request.status,
          attributes: request.attributes,
        }));
        return create(RegisterConfigurationItemResponseSchema, { item });
      },

      async updateConfigurationItem(request, ctx) {
        const hash = requestFingerprint(ConfigurationService.method.updateConfigurationItem.input, request);
        const item = await onItem(ctx, request.requestId, hash, request.ciId, () => ({
          kind: "updateConfigurationItem",
          name: request.name,
          owner: request.owner,
          setAttributes: request.setAttributes,
          removedAttributes: request.removedAttributes,
        }));
        return create(UpdateConfigurationItemResponseSchema, { item });
      },

      async changeConfigurationItemStatus(request, ctx) {
        const hash = requestFingerprint(ConfigurationService.method.changeConfigurationItemStatus.input, request);
        const item = await onItem(ctx, request.requestId, hash, request.ciId, () => ({
          kind: "changeConfigurationItemStatus",
          status: request.status,
        }));
        return create(ChangeConfigurationItemStatusResponseSchema, { item });
      },

      async getConfigurationItem(request) {
        const history = await readHistory<ConfigurationItemEvent>(store, ciStreamId(request.ciId));
        const { item } = itemAggregate.fold(isItemStream(history) ? upTo(history, request.asOf) : []);
        if (!item) {
          throw new NotFound(
            "configuration item",
            request.ciId,
            request.asOf
              ? `configuration item ${request.ciId} did not exist at ${timestampDate(request.asOf).toISOString()}`
              : undefined,
          );
        }
        return create(GetConfigurationItemResponseSchema, { item });
      },

      async listConfigurationItems(request) {
        const { items, next } = await listConfigurationItems(pool, {
          type: request.type,
          owner: request.owner,
          status: request.status,
          nameContains: request.nameContains,
          pageSize: request.pageSize || 100,
          after: decodeCursor(request.pageToken),
        });
        return create(ListConfigurationItemsResponseSchema, { items, nextPageToken: encodeCursor(next) });
      },

      async getConfigurationItemHistory(request) {
        const history = await readHistory<ConfigurationItemEvent>(store, ciStreamId(request.ciId));
        if (!isItemStream(history)) throw new NotFound("configuration item", request.ciId);
        return create(GetConfigurationItemHistoryResponseSchema, {
          changes: history.map((event) =>
            create(ConfigurationItemChangeSchema, {
              version: event.metadata?.streamVersion ?? 0n,
              ...(event.metadata?.occurredAt ? { occurredAt: event.metadata.occurredAt } : {}),
              actor: event.metadata?.actor ?? "",
              eventType: event.$typeName,
              summary: describeChange(event),
            }),
          ),
        });
      },

      async addRelationship(request, ctx) {
        const hash = requestFingerprint(ConfigurationService.method.addRelationship.input, request);
        const source = await onItem(ctx, request.requestId, hash, request.sourceCiId, async (tx) => ({
          kind: "addRelationship",
          type: request.type,
          targetCiId: request.targetCiId,
          target: await findConfigurationItem(tx, request.targetCiId),
        }));
        return create(AddRelationshipResponseSchema, { source });
      },

      async removeRelationship(request, ctx) {
        const hash = requestFingerprint(ConfigurationService.method.removeRelationship.input, request);
        const source = await onItem(ctx, request.requestId, hash, request.sourceCiId, () => ({
          kind: "removeRelationship",
          type: request.type,
          targetCiId: request.targetCiId,
        }));
        return create(RemoveRelationshipResponseSchema, { source });
      },

      async listRelationships(request) {
        if (!(await findConfigurationItem(pool, request.ciId))) throw new NotFound("configuration item", request.ciId);
        return create(ListRelationshipsResponseSchema, await relationshipsOf(pool, request.ciId));
      },

      analyzeImpact,

      async registerArtifact(request, ctx) {
        const requestHash = requestFingerprint(ConfigurationService.method.registerArtifact.input, request);
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
            const artifact = artifactAggregate.fold(after).artifact;
            if (artifact) await saveArtifact(tx, artifact);
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
        const { artifacts, next } = await listArtifacts(pool, {
          name: request.name,
          status: request.status,
          pageSize: request.pageSize || 100,
          after: decodeCursor(request.pageToken, isArtifactSortKey),
        });
        return create(ListArtifactsResponseSchema, { artifacts, nextPageToken: encodeCursor(next) });
      },

      async verifyArtifact(request, ctx) {
        const hash = requestFingerprint(ConfigurationService.method.verifyArtifact.input, request);
        const result = await verify(ctx, request.requestId, hash, request.artifactId, request.sha256, undefined);
        return create(VerifyArtifactResponseSchema, { result });
      },

      async verifyArtifactContent(requests, ctx) {
        const digest = createHash("sha256");
        let size = 0n;
        let first: { requestId: string; artifactId: string } | undefined;
        for await (const request of requests) {
          first ??= { requestId: request.requestId, artifactId: request.artifactId };
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
          .update(`${first.artifactId}\u0000${actual}\u0000${size}`)
          .digest("hex");
        const result = await verify(ctx, first.requestId, requestHash, first.artifactId, actual, size);
        return create(VerifyArtifactContentResponseSchema, { result });
      },

      async quarantineArtifact(request, ctx) {
        const hash = requestFingerprint(ConfigurationService.method.quarantineArtifact.input, request);
        return onArtifact(
          ctx,
          request.requestId,
          hash,
          request.artifactId,
          QuarantineArtifactResponseSchema,
          { kind: "quarantineArtifact", reason: request.reason },
          (all) => create(QuarantineArtifactResponseSchema, { artifact: artifactAggregate.fold(all).artifact }),
        );
      },

      async retireArtifact(request, ctx) {
        const hash = requestFingerprint(ConfigurationService.method.retireArtifact.input, request);
        return onArtifact(
          ctx,
          request.requestId,
          hash,
          request.artifactId,
          RetireArtifactResponseSchema,
          { kind: "retireArtifact", reason: request.reason },
          (all) => create(RetireArtifactResponseSchema, { artifact: artifactAggregate.fold(all).artifact }),
        );
      },

      async checkPackageConsistency(request) {
        const artifacts = await findArtifacts(pool, request.artifactIds);
        const found = new Set(artifacts.map((a) => a.artifactId));
        const missing = request.artifactIds.filter((id) => !found.has(id));
        if (missing.length > 0) throw new NotFound("artifact", missing.join(", "));
        const baseline = request.environment ? await findBaseline(pool, request.environment) : undefined;
        // Keep the caller's order, so problems come out in a stable, meaningful order.
        const ordered = request.artifactIds.map((id) => artifacts.find((a) => a.artifactId === id)).filter((a) => !!a);
        return checkPackageConsistency(ordered, baseline?.entries ?? []);
      },

      async getBaseline(request) {
        const history = upTo(
          await readHistory<BaselineEvent>(store, baselineStreamId(request.environment)),
          request.asOf,
        );
        const { baseline } = baselineAggregate.fold(history);
        if (!baseline) throw new NotFound("baseline", request.environment);
        return create(GetBaselineResponseSchema, { baseline });
      },
    },
  };
}
