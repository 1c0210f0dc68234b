import { currentTraceparent, inSpan, SpanKind } from "@rdm/observability";
import type { Pool, PoolClient } from "pg";
import {
  AppendBatcher,
  type AppendOutcome,
  appendBatch,
  appendedResult,
  type GroupCommitOptions,
  type ProjectionItem,
  refusal,
  runProjections,
  storeComputedResponses,
} from "./append-batch.js";
import { appendMany, getCommandResults, prepareAppend, recordCommandResults } from "./bulk.js";
import {
  COMMAND_RESULT_COLUMNS,
  type CommandResult,
  type CommandResultRow,
  commandResultOf,
} from "./command-results.js";
import type { ExpectedVersion } from "./errors.js";

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
  /**
   * Derived writes in the append's transaction, made only when it is appended (a command's read
   * model): a group-committed append and its projection commit together, the batch's items of one
   * projection in one call, and a projection that throws refuses its append.
   */
  projection?: ProjectionItem;
}

/** What an append of appendMany may carry (it is always in the caller's transaction, without projection). */
export type BulkAppendOptions = Pick<AppendOptions, "requestId" | "requestHash" | "response" | "streamType">;

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

/**
 * The lowest transaction id that may still append to this database's events: the smallest in
 * progress in the statement's snapshot, leaving out those placed in another database of the
 * server, else the snapshot's xmax. A transaction is placed by the lock it holds on its own id
 * (`pg_locks`, which names its process) and by that process's row in `pg_stat_activity` with the
 * same id and its database: a transaction runs in one database, so a placement cannot be wrong
 * (the activity rows may date from the start of the reader's transaction), only missing (the
 * process ended, a prepared transaction, a role that may not see it), and a missing one counts
 * as this database's, which only holds events back. pg_snapshot_xmin alone would hold every
 * relay on the server behind any write in any database (another service's projection, an
 * operator's forgotten BEGIN).
 */
const APPEND_HORIZON = `SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
    FROM pg_snapshot_xip(pg_current_snapshot()) AS x
    WHERE x::xid NOT IN (
      SELECT l.transactionid FROM pg_locks l
        JOIN pg_stat_activity a ON a.pid = l.pid AND a.backend_xid = l.transactionid
      WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted
        AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database()))`;

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

export interface EventStoreOptions {
  /** How appends outside a caller's transaction share statements and commits. */
  groupCommit?: GroupCommitOptions;
}

/**
 * Event store on one PostgreSQL database (one per service). Appends are optimistic: the
 * stream row's version is compared and bumped in the appending transaction, so of racing
 * appends with the same expected version exactly one commits. Appends outside a caller's
 * transaction are group-committed (see AppendBatcher): concurrent appends share one statement
 * and one commit, each keeping its own outcome.
 */
export class EventStore {
  private readonly batcher: AppendBatcher;

  constructor(
    readonly pool: Pool,
    options: EventStoreOptions = {},
  ) {
    this.batcher = new AppendBatcher(pool, options.groupCommit);
  }

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
        const append = prepareAppend(streamId, expectedVersion, events, options, currentTraceparent());
        if (!options.client) return this.batcher.append(append);
        // In the caller's transaction: one statement, and a refusal leaves that transaction usable.
        const [row] = await appendBatch(options.client, [append]);
        const refused = refusal(append, row as AppendOutcome);
        if (refused) throw refused;
        await storeComputedResponses(options.client, [append], [row as AppendOutcome]);
        await runProjections(options.client, [append], [row as AppendOutcome]);
        return appendedResult(row as AppendOutcome);
      },
    );
  }

  /**
   * Records a request id's answer for a command that appended nothing (a no-op): otherwise a
   * retry would be decided again on whatever the state is by then, and reusing the id for another
   * request would go unnoticed. False when the id is already taken (a racing retry, or another request).
   */
  async recordCommandResult(
    requestId: string,
    result: { requestHash: string; response: Uint8Array | null; streamId: string; streamVersion?: number },
  ): Promise<boolean> {
    const { rowCount } = await this.pool.query(
      `INSERT INTO command_results (request_id, request_hash, response, stream_id, stream_version)
       VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING`,
      [
        requestId,
        result.requestHash,
        result.response && Buffer.from(result.response),
        result.streamId,
        result.streamVersion ?? null,
      ],
    );
    return rowCount === 1;
  }

  /**
   * Appends to many streams in one statement, in the caller's open transaction (bulk commands):
   * each append gets its own result or refusal (WrongExpectedVersion, DuplicateRequest) and a
   * refusal leaves the transaction usable. Projections are the caller's, in that transaction.
   */
  async appendMany(
    client: PoolClient,
    appends: { streamId: string; expectedVersion: ExpectedVersion; events: NewEvent[]; options?: BulkAppendOptions }[],
  ): Promise<(AppendResult | Error)[]> {
    return inSpan("eventstore.append_many", { attributes: { "rdm.append_count": appends.length } }, () => {
      const traceparent = currentTraceparent();
      return appendMany(
        client,
        appends.map((a) => prepareAppend(a.streamId, a.expectedVersion, a.events, a.options ?? {}, traceparent)),
      );
    });
  }

  /** The recorded answers of several request ids in one statement, by request id. */
  getCommandResults(requestIds: string[], options: { client?: Queryable } = {}): Promise<Map<string, CommandResult>> {
    return getCommandResults(options.client ?? this.pool, requestIds);
  }

  /** recordCommandResult for many no-ops at once (`client`: in the caller's transaction); how many were recorded. */
  recordCommandResults(
    results: { requestId: string; requestHash: string; response: Uint8Array; streamId: string }[],
    options: { client?: Queryable } = {},
  ): Promise<number> {
    return recordCommandResults(options.client ?? this.pool, results);
  }

  /** The recorded answer of a request id; `client` reads it in the caller's transaction. */
  async getCommandResult(requestId: string, options: { client?: Queryable } = {}): Promise<CommandResult | null> {
    const { rows } = await (options.client ?? this.pool).query<CommandResultRow>(
      `SELECT ${COMMAND_RESULT_COLUMNS} FROM command_results WHERE request_id = $1`,
      [requestId],
    );
    const row = rows[0];
    return row ? commandResultOf(row) : null;
  }

  /**
   * The stream's events from `fromVersion` and the request id's recorded answer, in one statement
   * (one round trip, one snapshot): a command's load and its idempotency check.
   */
  async readStreamWithCommandResult(
    streamId: string,
    requestId: string,
    options: { fromVersion?: number; client?: Queryable } = {},
  ): Promise<{ events: RecordedEvent[]; commandResult: CommandResult | null }> {
    return inSpan("eventstore.read_stream", { attributes: { "rdm.stream_id": streamId } }, async () => {
      const { rows } = await (options.client ?? this.pool).query<
        Partial<EventRow> & {
          recorded: boolean;
          request_hash: string | null;
          response: Buffer | null;
          result_stream_id: string | null;
          result_stream_version: string | null;
        }
      >({
        name: "rdm_read_stream_with_command_result",
        // The one row of `one` carries the answer (NULLs when there is none) beside each event, or alone.
        text: `SELECT c.request_id IS NOT NULL AS recorded, c.request_hash, c.response, c.stream_id AS result_stream_id,
            c.stream_version AS result_stream_version, e.*
          FROM (VALUES (1)) AS one (x)
          LEFT JOIN command_results c ON c.request_id = $3
          LEFT JOIN LATERAL (SELECT ${EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version >= $2) e ON true
          ORDER BY e.version`,
        values: [streamId, options.fromVersion ?? 1, requestId || null],
      });
      const first = rows[0];
      const commandResult = first?.recorded
        ? commandResultOf({ ...first, stream_id: first.result_stream_id, stream_version: first.result_stream_version })
        : null;
      const events = rows.filter((r) => r.event_id != null).map((r) => toRecordedEvent(r as EventRow));
      return { events, commandResult };
    });
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
  async readAll(options: { after?: number; limit?: number; client?: Queryable } = {}): Promise<RecordedEvent[]> {
    return inSpan("eventstore.read_all", {}, async () => {
      const { rows } = await (options.client ?? this.pool).query<EventRow>(
        `SELECT ${EVENT_COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2`,
        [options.after ?? 0, options.limit ?? null],
      );
      return rows.map(toRecordedEvent);
    });
  }

  /**
   * Events strictly after `after` in commit order (transaction id, then position), limited to
   * transaction ids below every transaction that may still append here: those in progress in
   * the current snapshot, but for the ones placed in another database of the server (they cannot
   * write to this one; APPEND_HORIZON), or the snapshot's xmax when none is left. No event
   * can later appear before the last one returned, so a reader that checkpoints the last
   * (transactionId, globalPosition) never skips one. See @rdm/relay README.
   */
  async readAllCommitted(
    options: { after?: CommitOrderPosition; limit?: number; client?: Queryable } = {},
  ): Promise<RecordedEvent[]> {
    return inSpan("eventstore.read_all_committed", {}, async () => {
      const after = options.after ?? { transactionId: "0", globalPosition: 0 };
      const { rows } = await (options.client ?? this.pool).query<EventRow>({
        name: "rdm_read_all_committed",
        // Qualified names: the output column transaction_id is text, and must not be what we sort by.
        text: `SELECT ${EVENT_COLUMNS} FROM events e
               WHERE (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint)
                 AND e.transaction_id < (${APPEND_HORIZON})
               ORDER BY e.transaction_id, e.global_position
               LIMIT $3`,
        values: [after.transactionId, after.globalPosition, options.limit ?? null],
      });
      return rows.map(toRecordedEvent);
    });
  }

  /**
   * Locks the stream's row until the caller's transaction ends (none while the stream has no
   * events): appends to it from other transactions wait for this one, then find their expected
   * version behind them (WrongExpectedVersion) and are decided again. For a command decided inside
   * a longer transaction, such as a consumer's, which cannot be decided again alone.
   */
  async lockStream(streamId: string, client: Queryable): Promise<void> {
    await client.query({
      name: "rdm_lock_stream",
      // NO KEY: the lock an append's own UPDATE of the row takes, and no stronger.
      text: "SELECT 1 FROM streams WHERE stream_id = $1 FOR NO KEY UPDATE",
      values: [streamId],
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
