import { randomUUID } from "node:crypto";
import type { PoolClient } from "pg";
import {
  type AppendOutcome,
  appendBatch,
  appendedResult,
  type PreparedAppend,
  refusal,
  storeComputedResponses,
} from "./append-batch.js";
import {
  COMMAND_RESULT_COLUMNS,
  type CommandResult,
  type CommandResultRow,
  commandResultOf,
} from "./command-results.js";
import type { ExpectedVersion } from "./errors.js";
import type { AppendOptions, AppendResult, NewEvent } from "./event-store.js";
import { byteaArray } from "./unnest.js";

type Queryable = Pick<PoolClient, "query">;

/** An append as the batch statement takes it: ids given, request id and traceparent in the metadata. */
export function prepareAppend(
  streamId: string,
  expected: ExpectedVersion,
  events: NewEvent[],
  options: Omit<AppendOptions, "client">,
  traceparent: string | undefined,
): PreparedAppend {
  return {
    streamId,
    streamType: options.streamType ?? streamId.split("-")[0] ?? streamId,
    expected,
    events: events.map((e) => ({
      ...e,
      eventId: e.eventId ?? randomUUID(),
      metadata: {
        ...(options.requestId ? { requestId: options.requestId } : {}),
        ...e.metadata,
        ...(e.metadata.traceparent || !traceparent ? {} : { traceparent }),
      },
    })),
    requestId: options.requestId,
    requestHash: options.requestHash,
    response: options.response,
    projection: options.projection,
  };
}

/**
 * Appends to many streams in one statement in the caller's open transaction; each append keeps
 * its own outcome (its result, or the error it is refused with), and a refusal leaves the
 * transaction usable. Stream rows are locked in stream-id order (a stable sort: appends to one
 * stream keep theirs), as group-committed batches lock them, so they cannot deadlock.
 */
export async function appendMany(client: PoolClient, appends: PreparedAppend[]): Promise<(AppendResult | Error)[]> {
  const order = appends.map((_, i) => i);
  const streamOf = (i: number) => (appends[i] as PreparedAppend).streamId;
  order.sort((a, b) => (streamOf(a) < streamOf(b) ? -1 : streamOf(a) > streamOf(b) ? 1 : a - b));
  const sorted = order.map((i) => appends[i] as PreparedAppend);
  const rows = await appendBatch(client, sorted);
  await storeComputedResponses(client, sorted, rows);
  const results: (AppendResult | Error)[] = new Array(appends.length);
  order.forEach((original, i) => {
    const row = rows[i] as AppendOutcome;
    results[original] = refusal(sorted[i] as PreparedAppend, row) ?? appendedResult(row);
  });
  return results;
}

/** The recorded answers of several request ids in one statement (no entry: none recorded). */
export async function getCommandResults(q: Queryable, requestIds: string[]): Promise<Map<string, CommandResult>> {
  const { rows } = await q.query<CommandResultRow & { request_id: string }>(
    `SELECT request_id, ${COMMAND_RESULT_COLUMNS} FROM command_results WHERE request_id = ANY($1::text[])`,
    [requestIds],
  );
  return new Map(rows.map((row) => [row.request_id, commandResultOf(row)]));
}

/**
 * Records the answers of commands that appended nothing, in one statement; returns how many
 * were recorded (an id already taken, by a racing retry or another request, is left as it is).
 */
export async function recordCommandResults(
  q: Queryable,
  results: { requestId: string; requestHash: string; response: Uint8Array; streamId: string }[],
): Promise<number> {
  if (results.length === 0) return 0;
  const { rowCount } = await q.query(
    `INSERT INTO command_results (request_id, request_hash, response, stream_id)
     SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[]) ON CONFLICT (request_id) DO NOTHING`,
    [
      results.map((r) => r.requestId),
      results.map((r) => r.requestHash),
      byteaArray(results.map((r) => r.response)),
      results.map((r) => r.streamId),
    ],
  );
  return rowCount ?? 0;
}
