import type { Pool, PoolClient } from "pg";
import { DuplicateRequest, type ExpectedVersion, WrongExpectedVersion } from "./errors.js";
import { withTransaction } from "./transaction.js";
import { byteaArray } from "./unnest.js";

type Queryable = Pick<PoolClient, "query">;

/** What an append needs once its events are stamped (ids, metadata). */
export interface PreparedAppend {
  streamId: string;
  streamType: string;
  expected: ExpectedVersion;
  events: { eventId: string; type: string; data: Uint8Array; metadata: Record<string, unknown> }[];
  requestId?: string | undefined;
  requestHash?: string | undefined;
  response?: Uint8Array | ((result: AppendOutcomeResult) => Uint8Array) | undefined;
  /** Derived writes in the append's transaction, made only when it is appended. */
  projection?: ProjectionItem | undefined;
}

/**
 * Writes derived from appends (a command's read model), made in their transaction: once per
 * batch, with the items of all its appended appends that carry this projection, in append order,
 * so a batch of commands costs one round trip per projection, not one per command.
 */
export interface Projection<T> {
  apply(client: PoolClient, items: T[]): Promise<void>;
}

/** An append's item for a projection. */
export interface ProjectionItem<T = unknown> {
  projection: Projection<T>;
  item: T;
}

export interface AppendOutcomeResult {
  nextVersion: number;
  positions: number[];
}

/** One row of rdm_append_batch per append, in order (see the function in schema.ts). */
export interface AppendOutcome {
  outcome: "appended" | "duplicate" | "conflict" | "stale";
  stream_version: string | null;
  positions: string[] | null;
}

const APPEND_BATCH_SQL = `SELECT outcome, stream_version, positions::text[] AS positions FROM rdm_append_batch(
  $1::text[], $2::text[], $3::bigint[], $4::int[], $5::text[], $6::text[], $7::bytea[],
  $8::uuid[], $9::text[], $10::bytea[], $11::jsonb[])`;

const expectedCode = (expected: ExpectedVersion) => (expected === "any" ? -1 : expected === "no_stream" ? 0 : expected);

/** Runs the appends in one statement: in `q`'s transaction if it has one open, else as its own. */
export async function appendBatch(q: Queryable, appends: PreparedAppend[]): Promise<AppendOutcome[]> {
  const events = appends.flatMap((a) => a.events);
  const { rows } = await q.query<AppendOutcome>({
    // Named: parsed and planned once per connection.
    name: "rdm_append_batch",
    text: APPEND_BATCH_SQL,
    values: [
      appends.map((a) => a.streamId),
      appends.map((a) => a.streamType),
      appends.map((a) => expectedCode(a.expected)),
      appends.map((a) => a.events.length),
      appends.map((a) => a.requestId ?? null),
      appends.map((a) => a.requestHash ?? null),
      byteaArray(appends.map((a) => (a.response instanceof Uint8Array ? a.response : null))),
      events.map((e) => e.eventId),
      events.map((e) => e.type),
      byteaArray(events.map((e) => e.data)),
      events.map((e) => e.metadata),
    ],
  });
  return rows;
}

export const appendedResult = (row: AppendOutcome): AppendOutcomeResult => ({
  nextVersion: Number(row.stream_version),
  positions: (row.positions ?? []).map(Number),
});

/** Stores the responses that are computed from the append's result (same transaction as the append). */
export async function storeComputedResponses(
  q: Queryable,
  appends: PreparedAppend[],
  outcomes: AppendOutcome[],
): Promise<void> {
  const ids: string[] = [];
  const responses: Uint8Array[] = [];
  appends.forEach((a, i) => {
    const row = outcomes[i];
    if (a.requestId && typeof a.response === "function" && row?.outcome === "appended") {
      ids.push(a.requestId);
      responses.push(a.response(appendedResult(row)));
    }
  });
  if (ids.length === 0) return;
  await q.query(
    `UPDATE command_results AS c SET response = r.response
     FROM unnest($1::text[], $2::bytea[]) AS r (request_id, response) WHERE c.request_id = r.request_id`,
    [ids, byteaArray(responses)],
  );
}

/** Applies each projection once, to the items of the appended appends, in the appends' transaction. */
export async function runProjections(
  client: PoolClient,
  appends: PreparedAppend[],
  outcomes: AppendOutcome[],
): Promise<void> {
  const items = new Map<Projection<unknown>, unknown[]>();
  for (const [i, a] of appends.entries()) {
    if (!a.projection || outcomes[i]?.outcome !== "appended") continue;
    const list = items.get(a.projection.projection) ?? [];
    list.push(a.projection.item);
    items.set(a.projection.projection, list);
  }
  for (const [projection, list] of items) await projection.apply(client, list);
}

/** The error a refused append surfaces as; undefined when it was appended. */
export function refusal(append: PreparedAppend, row: AppendOutcome, reason?: string): Error | undefined {
  switch (row.outcome) {
    case "appended":
      return undefined;
    case "duplicate":
      return new DuplicateRequest(append.requestId as string);
    case "stale":
      return new WrongExpectedVersion(
        append.streamId,
        append.expected,
        Number(row.stream_version),
        reason ?? `stream ${append.streamId} was appended by a newer transaction; retry in a fresh transaction`,
      );
    default:
      return new WrongExpectedVersion(append.streamId, append.expected, Number(row.stream_version));
  }
}

/** How appends that are not in a caller's transaction share transactions. */
export interface GroupCommitOptions {
  /** Most appends in one statement and commit; default 64. */
  maxBatchSize?: number;
  /** Batches in flight at once, each on its own connection; default 2. */
  maxConcurrentBatches?: number;
}

interface Waiting {
  append: PreparedAppend;
  staleRetries: number;
  resolve: (result: AppendOutcomeResult) => void;
  reject: (error: Error) => void;
}

/** Still overtaken after this many fresh transactions: a conflict like any other (ABORTED). */
const MAX_STALE_RETRIES = 5;

/**
 * Group commit: appends that arrive while batches are in flight wait and then go together, in
 * one statement (rdm_append_batch) and one commit. A lone append goes at once, so one writer
 * pays one round trip per append. Each append's outcome is its own: a conflict, a duplicate
 * request or a stale transaction refuses that append only. When the statement itself fails
 * (a value PostgreSQL refuses, a deadlock between batches, a response function that throws),
 * each append of the batch runs again alone, so the error reaches only the append that caused it.
 * So does a projection that throws: the batch's transaction is rolled back as a whole.
 */
export class AppendBatcher {
  private readonly queue: Waiting[] = [];
  private inFlight = 0;
  private readonly maxBatchSize: number;
  private readonly maxConcurrentBatches: number;

  constructor(
    private readonly pool: Pool,
    options: GroupCommitOptions = {},
  ) {
    this.maxBatchSize = options.maxBatchSize ?? 64;
    this.maxConcurrentBatches = options.maxConcurrentBatches ?? 2;
  }

  append(append: PreparedAppend): Promise<AppendOutcomeResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ append, staleRetries: 0, resolve, reject });
      this.drain();
    });
  }

  private drain(): void {
    while (this.queue.length > 0 && this.inFlight < this.maxConcurrentBatches) {
      const batch = this.queue.splice(0, this.maxBatchSize);
      this.inFlight++;
      void this.run(batch).finally(() => {
        this.inFlight--;
        this.drain();
      });
    }
  }

  private async run(batch: Waiting[]): Promise<void> {
    // Every batch locks stream rows in stream-id order, so two batches cannot deadlock on them
    // (the sort is stable: appends to one stream keep their order).
    batch.sort((a, b) => (a.append.streamId < b.append.streamId ? -1 : a.append.streamId > b.append.streamId ? 1 : 0));
    const appends = batch.map((w) => w.append);
    let outcomes: AppendOutcome[];
    try {
      outcomes = appends.some((a) => typeof a.response === "function" || a.projection)
        ? await withTransaction(this.pool, async (client) => {
            const rows = await appendBatch(client, appends);
            await storeComputedResponses(client, appends, rows);
            await runProjections(client, appends, rows);
            return rows;
          })
        : await appendBatch(this.pool, appends);
    } catch (error) {
      if (batch.length === 1) (batch[0] as Waiting).reject(error as Error);
      else await Promise.all(batch.map((w) => this.run([w])));
      return;
    }
    for (const [i, waiting] of batch.entries()) this.settle(waiting, outcomes[i] as AppendOutcome);
  }

  private settle(waiting: Waiting, row: AppendOutcome): void {
    if (row.outcome === "appended") {
      waiting.resolve(appendedResult(row));
    } else if (row.outcome === "stale" && waiting.staleRetries < MAX_STALE_RETRIES - 1) {
      waiting.staleRetries++;
      this.queue.push(waiting);
      this.drain();
    } else {
      const reason = `stream ${waiting.append.streamId} kept being appended by newer transactions; retry`;
      waiting.reject(refusal(waiting.append, row, reason) as Error);
    }
  }
}
