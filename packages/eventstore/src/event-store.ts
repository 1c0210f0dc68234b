import { randomUUID } from "node:crypto";
import { currentTraceparent, inSpan, SpanKind } from "@rdm/observability";
import type { Pool, PoolClient } from "pg";
import { DuplicateRequest, type ExpectedVersion, WrongExpectedVersion } from "./errors.js";
import { EVENTS_CHANNEL } from "./schema.js";
import { withTransaction } from "./transaction.js";

/** Who and why, recorded with every event. */
export interface EventMetadata {
  actor?: string;
  correlationId?: string;
  causationId?: string;
  requestId?: string;
  /** W3C traceparent; filled from the active span when not given. */
  traceparent?: string;
  [key: string]: unknown;
}

export interface NewEvent {
  /** Defaults to a random UUID. */
  eventId?: string;
  /** Full protobuf message name, e.g. `rdm.release.v1.ReleaseRegistered`. */
  type: string;
  /** Protobuf binary encoding of the event message. */
  data: Uint8Array;
  metadata: EventMetadata;
}

export interface RecordedEvent {
  eventId: string;
  type: string;
  data: Uint8Array;
  metadata: EventMetadata;
  streamId: string;
  streamType: string;
  /** 1 for a stream's first event. */
  version: number;
  globalPosition: number;
  /** xid8 of the appending transaction, as a decimal string. */
  transactionId: string;
  recordedAt: Date;
}

export interface AppendResult {
  /** The stream's version after the append (= version of its last event). */
  nextVersion: number;
  /** Global positions of the appended events, in order. */
  positions: number[];
}

export interface AppendOptions {
  /** Idempotency key: recorded in the same transaction; a second append with it throws DuplicateRequest. */
  requestId?: string;
  /** Hash of the request body, so a caller can tell a retry from a different request reusing the id. */
  requestHash?: string;
  /** Response to return for retries; a function receives the append result (e.g. to include the new version). */
  response?: Uint8Array | ((result: AppendResult) => Uint8Array);
  /** Append inside the caller's open transaction (BEGIN already issued) instead of a new one. */
  client?: PoolClient;
  /** Stream category; defaults to the stream id up to its first "-" (EventStoreDB convention). */
  streamType?: string;
}

export interface CommandResult {
  requestHash: string | null;
  response: Uint8Array | null;
  streamId: string | null;
}

/** Position in the relay's commit order: events are ordered by (transactionId, globalPosition). */
export interface CommitOrderPosition {
  transactionId: string;
  globalPosition: number;
}

type Queryable = Pick<PoolClient, "query">;

interface EventRow {
  event_id: string;
  type: string;
  data: Buffer;
  metadata: EventMetadata;
  stream_id: string;
  stream_type: string;
  version: string;
  global_position: string;
  transaction_id: string;
  recorded_at: Date;
}

const EVENT_COLUMNS =
  "event_id, type, data, metadata, stream_id, stream_type, version, global_position, transaction_id::text AS transaction_id, recorded_at";

function toRecordedEvent(row: EventRow): RecordedEvent {
  return {
    eventId: row.event_id,
    type: row.type,
    data: new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength),
    metadata: row.metadata,
    streamId: row.stream_id,
    streamType: row.stream_type,
    version: Number(row.version),
    globalPosition: Number(row.global_position),
    transactionId: row.transaction_id,
    recordedAt: row.recorded_at,
  };
}

/** Signals that this transaction's id is older than the stream's last writer's; a fresh transaction fixes it. */
class StaleTransaction extends Error {}

const MAX_STALE_RETRIES = 5;

/**
 * Event store on one PostgreSQL database (one per service). Appends are optimistic:
 * the stream row's version is compared and bumped in the appending transaction, so of
 * racing appends with the same expected version exactly one commits.
 */
export class EventStore {
  constructor(readonly pool: Pool) {}

  async appendToStream(
    streamId: string,
    expectedVersion: ExpectedVersion,
    events: NewEvent[],
    options: AppendOptions = {},
  ): Promise<AppendResult> {
    if (events.length === 0) throw new Error("appendToStream: no events");
    return inSpan(
      "eventstore.append",
      {
        kind: SpanKind.INTERNAL,
        attributes: { "rdm.stream_id": streamId, "rdm.event_count": events.length },
      },
      async () => {
        const traceparent = currentTraceparent();
        const prepared = events.map((e) => ({
          ...e,
          eventId: e.eventId ?? randomUUID(),
          metadata: {
            ...(options.requestId ? { requestId: options.requestId } : {}),
            ...e.metadata,
            ...(e.metadata.traceparent || !traceparent ? {} : { traceparent }),
          },
        }));
        const { client } = options;
        if (client) {
          try {
            return await this.appendIn(client, streamId, expectedVersion, prepared, options);
          } catch (error) {
            if (error instanceof StaleTransaction) {
              throw new WrongExpectedVersion(
                streamId,
                expectedVersion,
                await this.streamVersionOn(client, streamId),
                `stream ${streamId} was appended by a newer transaction; retry in a fresh transaction`,
              );
            }
            throw error;
          }
        }
        for (let attempt = 1; ; attempt++) {
          try {
            return await withTransaction(this.pool, (c) =>
              this.appendIn(c, streamId, expectedVersion, prepared, options),
            );
          } catch (error) {
            if (!(error instanceof StaleTransaction)) throw error;
            // Still overtaken after fresh transactions: a conflict like any other (ABORTED), not a crash.
            if (attempt >= MAX_STALE_RETRIES)
              throw new WrongExpectedVersion(
                streamId,
                expectedVersion,
                await this.streamVersion(streamId),
                `stream ${streamId} kept being appended by newer transactions; retry`,
              );
          }
        }
      },
    );
  }

  private async appendIn(
    client: Queryable,
    streamId: string,
    expected: ExpectedVersion,
    events: Required<NewEvent>[],
    options: AppendOptions,
  ): Promise<AppendResult> {
    const count = events.length;
    const streamType = options.streamType ?? streamId.split("-")[0] ?? streamId;
    if (options.requestId) {
      // First, so a retried command is recognized before its (now stale) expected version is checked.
      // A concurrent duplicate blocks on the primary key until the first commits or rolls back.
      const inserted = await client.query(
        `INSERT INTO command_results (request_id, request_hash, response, stream_id)
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING RETURNING request_id`,
        [
          options.requestId,
          options.requestHash ?? null,
          options.response instanceof Uint8Array ? Buffer.from(options.response) : null,
          streamId,
        ],
      );
      if (inserted.rowCount === 0) throw new DuplicateRequest(options.requestId);
    }

    // The stream row is the concurrency token. A racing UPDATE waits for the winner's commit,
    // re-checks its WHERE against the new row and matches nothing. The transaction-id condition
    // keeps each stream's events in transaction-id order (what the relay publishes in).
    let result: { rows: { version: string }[] };
    if (expected === "any") {
      result = await client.query(
        `INSERT INTO streams AS s (stream_id, stream_type, version, last_transaction_id)
         VALUES ($1, $2, $3, pg_current_xact_id())
         ON CONFLICT (stream_id) DO UPDATE
           SET version = s.version + $3, last_transaction_id = pg_current_xact_id(), updated_at = now()
           WHERE s.last_transaction_id <= pg_current_xact_id()
         RETURNING version`,
        [streamId, streamType, count],
      );
    } else if (expected === "no_stream" || expected === 0) {
      result = await client.query(
        `INSERT INTO streams (stream_id, stream_type, version, last_transaction_id)
         VALUES ($1, $2, $3, pg_current_xact_id())
         ON CONFLICT (stream_id) DO NOTHING RETURNING version`,
        [streamId, streamType, count],
      );
    } else {
      result = await client.query(
        `UPDATE streams SET version = version + $3, last_transaction_id = pg_current_xact_id(), updated_at = now()
         WHERE stream_id = $1 AND version = $2 AND last_transaction_id <= pg_current_xact_id()
         RETURNING version`,
        [streamId, expected, count],
      );
    }
    const row = result.rows[0];
    if (!row) {
      const current = await client.query<{ version: string; stale: boolean }>(
        `SELECT version, last_transaction_id > pg_current_xact_id() AS stale FROM streams WHERE stream_id = $1`,
        [streamId],
      );
      const actual = Number(current.rows[0]?.version ?? 0);
      const versionMatches = expected === "any" || (expected === "no_stream" ? actual === 0 : actual === expected);
      if (versionMatches && current.rows[0]?.stale) throw new StaleTransaction();
      throw new WrongExpectedVersion(streamId, expected, actual);
    }
    const nextVersion = Number(row.version);
    const firstVersion = nextVersion - count + 1;

    const params: unknown[] = [];
    const tuples = events.map((e, i) => {
      params.push(streamId, streamType, firstVersion + i, e.eventId, e.type, Buffer.from(e.data), e.metadata);
      const b = i * 7;
      return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7})`;
    });
    const inserted = await client.query<{ global_position: string }>(
      `INSERT INTO events (stream_id, stream_type, version, event_id, type, data, metadata)
       VALUES ${tuples.join(", ")} RETURNING global_position`,
      params,
    );
    const positions = inserted.rows.map((r) => Number(r.global_position));
    const appended = { nextVersion, positions };

    if (options.requestId && typeof options.response === "function") {
      await client.query("UPDATE command_results SET response = $2 WHERE request_id = $1", [
        options.requestId,
        Buffer.from(options.response(appended)),
      ]);
    }
    // Delivered at commit (and not at all on rollback); identical payloads in one transaction collapse.
    await client.query("SELECT pg_notify($1, '')", [EVENTS_CHANNEL]);
    return appended;
  }

  /**
   * Records a request id's answer for a command that appended nothing (a no-op): otherwise a
   * retry would be decided again on whatever the state is by then, and reusing the id for another
   * request would go unnoticed. False when the id is already taken (a racing retry, or another request).
   */
  async recordCommandResult(
    requestId: string,
    result: { requestHash: string; response: Uint8Array; streamId: string },
  ): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `INSERT INTO command_results (request_id, request_hash, response, stream_id)
       VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING`,
      [requestId, result.requestHash, Buffer.from(result.response), result.streamId],
    );
    return rowCount === 1;
  }

  /** The recorded answer of a request id; `client` reads it in the caller's transaction. */
  async getCommandResult(requestId: string, options: { client?: Queryable } = {}): Promise<CommandResult | null> {
    const { rows } = await (options.client ?? this.pool).query<{
      request_hash: string | null;
      response: Buffer | null;
      stream_id: string | null;
    }>("SELECT request_hash, response, stream_id FROM command_results WHERE request_id = $1", [requestId]);
    const row = rows[0];
    if (!row) return null;
    return {
      requestHash: row.request_hash,
      response: row.response ? new Uint8Array(row.response) : null,
      streamId: row.stream_id,
    };
  }

  /** The stream's events in version order, from `fromVersion` (inclusive, default 1). */
  async readStream(
    streamId: string,
    options: { fromVersion?: number; limit?: number; client?: Queryable } = {},
  ): Promise<RecordedEvent[]> {
    return inSpan("eventstore.read_stream", { attributes: { "rdm.stream_id": streamId } }, async () => {
      const { rows } = await (options.client ?? this.pool).query<EventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2 ORDER BY version LIMIT $3`,
        [streamId, options.fromVersion ?? 1, options.limit ?? null],
      );
      return rows.map(toRecordedEvent);
    });
  }

  /**
   * Events in global-position order after `after` (exclusive). Good for replays and rebuilds
   * of a quiet store; a live tail must use readAllCommitted, since a position can become
   * visible after higher ones.
   */
  async readAll(options: { after?: number; limit?: number } = {}): Promise<RecordedEvent[]> {
    return inSpan("eventstore.read_all", {}, async () => {
      const { rows } = await this.pool.query<EventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2`,
        [options.after ?? 0, options.limit ?? null],
      );
      return rows.map(toRecordedEvent);
    });
  }

  /**
   * Events strictly after `after` in commit order (transaction id, then position), limited to
   * transactions that have finished in every snapshot (transaction_id below the current
   * snapshot's xmin). No event can later appear before the last one returned, so a reader that
   * checkpoints the last (transactionId, globalPosition) never skips one. See @rdm/relay README.
   */
  async readAllCommitted(
    options: { after?: CommitOrderPosition; limit?: number; client?: Queryable } = {},
  ): Promise<RecordedEvent[]> {
    return inSpan("eventstore.read_all_committed", {}, async () => {
      const after = options.after ?? { transactionId: "0", globalPosition: 0 };
      const { rows } = await (options.client ?? this.pool).query<EventRow>(
        // Qualified names: the output column transaction_id is text, and must not be what we sort by.
        `SELECT ${EVENT_COLUMNS} FROM events e
         WHERE (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint)
           AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
         ORDER BY e.transaction_id, e.global_position
         LIMIT $3`,
        [after.transactionId, after.globalPosition, options.limit ?? null],
      );
      return rows.map(toRecordedEvent);
    });
  }

  /** Current version of the stream; 0 when it has no events. */
  async streamVersion(streamId: string): Promise<number> {
    return this.streamVersionOn(this.pool, streamId);
  }

  private async streamVersionOn(client: Queryable, streamId: string): Promise<number> {
    const { rows } = await client.query<{ version: string }>("SELECT version FROM streams WHERE stream_id = $1", [
      streamId,
    ]);
    return Number(rows[0]?.version ?? 0);
  }
}
