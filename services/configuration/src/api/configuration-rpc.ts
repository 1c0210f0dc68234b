import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { type ClientCommand, type CommandHandler, type CommandOrigin, RuleViolation } from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import type { ServiceHandlers } from "@rdm/grpc";
import { type CallContext, requestFingerprint } from "@rdm/grpc";
import {
  type ConfigurationService,
  GetConfigurationItemResponseSchema,
  type RegisterConfigurationItemRequest,
  type VerificationResult,
  VerificationResultSchema,
  VerifyArtifactResponseSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { encodePageToken, pageCursor } from "@rdm/runtime";
import type pg from "pg";
import type { ArtifactCommand, ArtifactEvent } from "../domain/artifact.js";
import * as artifactAggregate from "../domain/artifact.js";
import type { ConfigurationItemCommand, ConfigurationItemEvent } from "../domain/configuration-item.js";
import * as itemAggregate from "../domain/configuration-item.js";
import type { ConfigurationEvent } from "../store/event-codec.js";
import { itemProjection, saveArtifactRow } from "../store/query-tables.js";
import { historyOf } from "../store/streams.js";

export interface ConfigurationApiDeps {
  store: EventStore;
  pool: pg.Pool;
  handler: CommandHandler<ConfigurationEvent>;
}

export type ConfigurationHandlers = ServiceHandlers<(typeof ConfigurationService)["method"]>;

export const nanos = (t: Timestamp) => t.seconds * 1_000_000_000n + BigInt(t.nanos);
/** Events that had happened at `asOf` (all of them without one). */
export function upTo<E extends { metadata?: { occurredAt?: Timestamp } }>(
  events: E[],
  asOf: Timestamp | undefined,
): E[] {
  if (!asOf) return events;
  const limit = nanos(asOf);
  return events.filter((event) => event.metadata?.occurredAt && nanos(event.metadata.occurredAt) <= limit);
}

export const encodeCursor = (scope: string, cursor: [string, string] | undefined) =>
  cursor ? encodePageToken(scope, ...cursor) : "";
/**
 * Only what encodeCursor wrote with `scope` gets through, so a forged token is INVALID_ARGUMENT
 * rather than a query PostgreSQL fails on, and so is one of another list or other filters (a
 * part holding U+0000 is refused by decodePageToken itself).
 */
export const decodeCursor = (token: string, scope: string, isSortKey: (key: string) => boolean = () => true) =>
  pageCursor(token, scope, isSortKey, () => true);

export const ciStreamId = (ciId: string) => ciId;
/**
 * CI and artifact ids are bare stream ids, so an id may name a stream of another kind: a stream
 * is a CI's (an artifact's) only if it opens with that registration.
 */
export const isItemStream = (history: ConfigurationEvent[]) =>
  history[0]?.$typeName === "rdm.configuration.v1.ConfigurationItemRegistered";
export const isArtifactStream = (history: ConfigurationEvent[]) =>
  history[0]?.$typeName === "rdm.configuration.v1.ArtifactRegistered";
/** A stream of another kind under the id: refused as if nothing were there. */
export const notFound = (resourceType: string, id: string) =>
  new RuleViolation("NOT_FOUND", "stream.kind", `${resourceType} ${id} not found`, { subject: id, resourceType });
export const newCiId = () => `ci-${randomUUID()}`;

/** The command that registers `request` as the new CI `ciId` (from RegisterConfigurationItem or an import). */
export const registrationCommand = (
  ciId: string,
  request: RegisterConfigurationItemRequest,
): Extract<ConfigurationItemCommand, { kind: "registerConfigurationItem" }> => ({
  kind: "registerConfigurationItem",
  ciId,
  name: request.name,
  type: request.type,
  owner: request.owner,
  status: request.status,
  attributes: request.attributes,
});
export const newArtifactId = () => `artifact-${randomUUID()}`;

/** A command's request id and the fingerprint its replays are checked against. */
export interface RequestIdentity {
  requestId: string;
  requestHash: string;
}

/** A request's identity: its id, and the fingerprint of the request and its caller. */
export const identityOf = <D extends DescMessage>(
  ctx: CallContext,
  schema: D,
  request: MessageShape<D> & { requestId: string },
): RequestIdentity => ({
  requestId: request.requestId,
  requestHash: requestFingerprint(schema, request, ctx.principal.subject),
});

const originOf = (ctx: CallContext, requestId: string): CommandOrigin => ({
  actor: ctx.principal.subject,
  groups: ctx.principal.groups,
  requestId,
  traceparent: ctx.traceparent,
});

/** How the configuration service's RPCs run commands through the command handler. */
export function configurationCommandRpc({ handler }: Pick<ConfigurationApiDeps, "handler">) {
  const execute = commandExecutor(handler);
  const onItem = itemCommandRunner(execute);
  const onArtifact = artifactCommandRunner(execute);
  return { execute, onItem, onArtifact, verify: verifier(onArtifact) };
}

function commandExecutor(handler: ConfigurationApiDeps["handler"]) {
  /** A command decided on a stream's history, through the command handler. */
  const execute = <E extends ConfigurationEvent, R extends DescMessage>(
    ctx: CallContext,
    requestId: string,
    command: Omit<ClientCommand<E[], E, R>, "aggregate">,
  ) => handler.handle(originOf(ctx, requestId), { aggregate: historyOf<E>(), ...command });
  return execute;
}

type Execute = ReturnType<typeof commandExecutor>;

function itemCommandRunner(execute: Execute) {
  /** A command on one configuration item's stream; answers with the item afterwards. */
  const onItem = async (
    ctx: CallContext,
    { requestId, requestHash }: RequestIdentity,
    ciId: string,
    /** Reads it needs go through `tx`. */
    command: (tx: pg.PoolClient) => Promise<ConfigurationItemCommand> | ConfigurationItemCommand,
    options: {
      /** The item's id was made for this command (a registration). */
      newStream?: boolean;
      /** `tx` is a transaction of the command's own, so its reads may lock rows until the append commits. */
      lockingReads?: boolean;
    } = {},
  ) => {
    const response = await execute<ConfigurationItemEvent, typeof GetConfigurationItemResponseSchema>(ctx, requestId, {
      streamId: ciStreamId(ciId),
      newStream: options.newStream ?? false,
      ...(options.lockingReads ? { prepare: async () => undefined } : {}),
      decide: async (history, _ctx, tx) => {
        // Empty: a registration's new stream (any other command finds no item).
        if (history.length > 0 && !isItemStream(history)) throw notFound("configuration item", ciId);
        return itemAggregate.decide(await command(tx), itemAggregate.fold(history));
      },
      respond: ({ after }) => create(GetConfigurationItemResponseSchema, { item: itemAggregate.fold(after).item }),
      projection: itemProjection,
      response: GetConfigurationItemResponseSchema,
      requestHash,
    });
    return response.item;
  };
  return onItem;
}

function artifactCommandRunner(execute: Execute) {
  /** A command on one artifact's stream. */
  const onArtifact = <R extends DescMessage>(
    ctx: CallContext,
    { requestId, requestHash }: RequestIdentity,
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
        await saveArtifactRow(tx, after);
      },
      response: responseSchema,
      requestHash,
    });
  return onArtifact;
}

export const verificationResult = (
  all: ArtifactEvent[],
  recorded: ArtifactEvent[],
  size?: bigint,
): VerificationResult => {
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

function verifier(onArtifact: ReturnType<typeof artifactCommandRunner>) {
  async function verify(
    ctx: CallContext,
    identity: RequestIdentity,
    artifactId: string,
    actualSha256: string,
    actualSizeBytes: bigint | undefined,
  ): Promise<VerificationResult> {
    const method = actualSizeBytes === undefined ? "digest" : "bytes";
    const response = await onArtifact(
      ctx,
      identity,
      artifactId,
      VerifyArtifactResponseSchema,
      { kind: "verifyArtifact", actualSha256, actualSizeBytes, method },
      (all, recorded) =>
        create(VerifyArtifactResponseSchema, { result: verificationResult(all, recorded, actualSizeBytes) }),
    );
    return response.result ?? create(VerificationResultSchema);
  }
  return verify;
}
