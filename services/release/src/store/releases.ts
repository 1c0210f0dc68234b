import { fromBinary } from "@bufbuild/protobuf";
import {
  type Aggregate,
  type Command,
  type CommandHandler,
  type DecisionContext,
  RuleViolation,
} from "@rdm/command-handler";
import { type Release, ReleaseSchema } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { isUuid } from "@rdm/runtime/process";
import type pg from "pg";
import { notificationsFor } from "../domain/notifications.js";
import {
  decide,
  evolve,
  fold,
  initialState,
  type ReleaseCommand,
  type ReleaseEvent,
  type ReleaseState,
} from "../domain/release.js";
import type { ReleaseServiceEvent } from "./event-codec.js";
import { encodedRelease, releaseProjection } from "./release-projection.js";

/**
 * Release streams: named by the release's UUID, of type "release" (the store's default type, the
 * id up to its first "-", would be the UUID's first segment, in stream_type and in ce_streamtype).
 */
export const releases: Aggregate<ReleaseState, ReleaseEvent> = { streamType: "release", initialState, evolve, fold };

/**
 * A release command as the command handler runs it: the notifications the policy asks for are
 * appended with the decided events, and the derived tables (index, deadlines, deliveries) are
 * written in the append's transaction. `toCommand` may read (e.g. linked change states) with `tx`.
 */
export function releaseCommand(
  releaseId: string,
  toCommand: (state: ReleaseState, tx: pg.PoolClient) => ReleaseCommand | Promise<ReleaseCommand>,
  options: { sizeLimited?: boolean } = {},
): Command<ReleaseState, ReleaseEvent> {
  return {
    aggregate: releases,
    streamId: releaseId,
    decide: async (state, ctx, tx) => decide(await toCommand(state, tx), state, ctx),
    // The limit guards what people write; a fact the release records about the world (a
    // deployment's outcome, a deadline missed) is never refused for it, or it would be lost.
    ...(options.sizeLimited !== false && { check: refuseOversized }),
    policy: (decided, before, ctx: DecisionContext) => notificationsFor(decided, (prefix) => fold(prefix, before), ctx),
    projection: releaseProjection,
  };
}

/**
 * The most bytes a release may hold (its log, tasks, approvals, links): every answer carries the
 * whole release, and a gRPC client receives at most 4 MiB by default, a ListReleases page several.
 */
export const MAX_RELEASE_BYTES = 1024 * 1024;

/** Refuses a command whose events would leave the release holding more than MAX_RELEASE_BYTES. */
function refuseOversized({ release }: ReleaseState): void {
  const bytes = release ? encodedRelease(release).byteLength : 0;
  if (bytes <= MAX_RELEASE_BYTES) return;
  throw new RuleViolation(
    "FAILED_PRECONDITION",
    "release.size_limit",
    `the release would hold ${bytes} bytes, more than the ${MAX_RELEASE_BYTES} a release may: keep long text outside it (a link in the log entry) or close it and register a new one`,
    { subject: release?.releaseId ?? "" },
  );
}

/**
 * The release's current state, for queries: from the state the command handler kept of it when it
 * has one (reading only the events after it), else from its whole stream.
 */
export async function readRelease(
  handler: CommandHandler<ReleaseServiceEvent>,
  pool: pg.Pool,
  releaseId: string,
): Promise<ReleaseState> {
  return (await handler.load(pool, { aggregate: releases, streamId: releaseId })).state;
}

/** The release as the release service's index holds it (undefined: unknown, or no release id). */
export async function indexedRelease(db: Pick<pg.Pool, "query">, releaseId: string): Promise<Release | undefined> {
  if (!isUuid(releaseId)) return undefined;
  const { rows } = await db.query<{ snapshot: Buffer }>({
    name: "rdm_indexed_release",
    text: "SELECT snapshot FROM release_index WHERE release_id = $1::uuid",
    values: [releaseId],
  });
  const row = rows[0];
  return row ? fromBinary(ReleaseSchema, new Uint8Array(row.snapshot)) : undefined;
}

/**
 * Serializes the reactions that read a release together with other services' facts about it (a
 * deployment's outcome, a change's state), each in its own consumer's transaction: each takes this
 * lock before reading, so whichever comes second sees what the first committed, and a production
 * success and the change state its gate waits for cannot both pass each other by.
 */
export async function lockReleaseReactions(tx: pg.PoolClient, releaseId: string): Promise<void> {
  await tx.query("SELECT pg_advisory_xact_lock(hashtext('rdm.release-reactions'), hashtext($1))", [releaseId]);
}
