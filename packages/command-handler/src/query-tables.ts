import { type EventStore, withTransaction } from "@rdm/eventstore";
import type pg from "pg";
import { type Aggregate, foldWith } from "./command.js";
import { isDeadlock, isLockNotAvailable } from "./conflicts.js";
import type { DomainEvent, EventCodec } from "./event-codec.js";

/** One stream's final state, to be written. */
export interface FinalState<S = unknown> {
  streamId: string;
  state: S;
}

/** What one stream type's final states write to the query tables. */
export interface StreamRows<E extends DomainEvent> {
  fold(events: E[], state: unknown): unknown;
  initialState(): unknown;
  /** Writes the rows of some streams' final states; returns how many of them wrote rows. */
  save(client: pg.PoolClient, streams: FinalState[]): Promise<number>;
}

/** A stream type's rows written stream by stream: `save` takes the state `aggregate` folds, false when it writes none. */
export function streamRows<S, E extends DomainEvent>(
  aggregate: Aggregate<S, E>,
  save: (client: pg.PoolClient, state: S, streamId: string) => Promise<boolean>,
): StreamRows<E> {
  return streamRowsInBatches(aggregate, async (client, streams) => {
    let written = 0;
    for (const { streamId, state } of streams) if (await save(client, state, streamId)) written++;
    return written;
  });
}

/** A stream type's one row: the entity its state holds once the stream has begun (`entity`), written by `save`. */
export function entityRows<S, T, E extends DomainEvent>(
  aggregate: Aggregate<S, E>,
  entity: (state: S) => T | undefined,
  save: (client: pg.PoolClient, entity: T) => Promise<void>,
): StreamRows<E> {
  return streamRows(aggregate, async (client, state) => {
    const held = entity(state);
    if (held !== undefined) await save(client, held);
    return held !== undefined;
  });
}

/** A stream type's rows written SAVE_BATCH streams a call (e.g. one statement each), which the tables wait less for. */
export function streamRowsInBatches<S, E extends DomainEvent>(
  aggregate: Aggregate<S, E>,
  save: (client: pg.PoolClient, streams: FinalState<S>[]) => Promise<number>,
): StreamRows<E> {
  return {
    fold: (events, state) => foldWith(aggregate, events, state as S),
    initialState: () => aggregate.initialState(),
    save: (client, streams) => save(client, streams as FinalState<S>[]),
  };
}

/** A service's query tables, as its commands' projections write them. */
export interface QueryTables<E extends DomainEvent> {
  /**
   * Every table the projections write, emptied before the rebuild writes them again; locked in
   * this order, best the order a group commit writes them in (stream id order), so the two rarely
   * deadlock.
   */
  tables: readonly string[];
  codec: Pick<EventCodec<E>, "decode">;
  /**
   * By stream type, in the order their rows are written; streams of other types are skipped.
   * Every append to a stream of these types must write one of `tables` in its transaction: that
   * is what makes the rebuild's lock wait for it (see rebuildQueryTables).
   */
  streams: Record<string, StreamRows<E>>;
  /**
   * Last in the rebuild's transaction, for what follows the tables by the events (which a rebuild
   * does not append): e.g. a mark that has a service's in-memory copy of them load them again.
   */
  rebuilt?(client: pg.PoolClient): Promise<void>;
}

const PAGE = 1000;
const SAVE_BATCH = 1000;

/**
 * Writes a service's query tables again from its event store (design §3, property 5): every
 * stream folded from its events, then saved, in one transaction. Its lock on the tables waits for
 * every transaction that wrote them, so every append of the streams' types has committed (and is
 * read here) or waits until the rebuild commits, its events unseen here, and then writes its rows
 * on top of the rebuilt ones. Commands' writes to the tables wait meanwhile; queries read the old
 * rows. Returns how many streams of each type wrote rows.
 */
export async function rebuildQueryTables<E extends DomainEvent>(
  pool: pg.Pool,
  store: EventStore,
  spec: QueryTables<E>,
): Promise<Record<string, number>> {
  // A group commit may hold one table's rows while it waits for another's, which the rebuild holds:
  // PostgreSQL ends one of the two (the commands retry), and a rebuild so ended starts again. So
  // does one whose lock waited LOCK_TIMEOUT for a long writer, with every new writer queued behind.
  for (let attempt = 1; ; attempt++) {
    try {
      return await rebuildOnce(pool, store, spec);
    } catch (error) {
      if (!(isDeadlock(error) || isLockNotAvailable(error)) || attempt === MAX_ATTEMPTS) throw error;
    }
  }
}

const MAX_ATTEMPTS = 5;
const LOCK_TIMEOUT = "5s";

async function rebuildOnce<E extends DomainEvent>(
  pool: pg.Pool,
  store: EventStore,
  spec: QueryTables<E>,
): Promise<Record<string, number>> {
  return withTransaction(pool, async (client) => {
    // EXCLUSIVE lets queries read the old rows until the commit; DELETE, unlike TRUNCATE, keeps that.
    await client.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
    await client.query(`LOCK TABLE ${spec.tables.join(", ")} IN EXCLUSIVE MODE`);
    await client.query("SET LOCAL lock_timeout = 0");
    for (const table of spec.tables) await client.query(`DELETE FROM ${table}`);
    // By stream type, each stream's state so far.
    const states = new Map(Object.keys(spec.streams).map((type) => [type, new Map<string, unknown>()]));
    for (let after = 0; ; ) {
      const page = await store.readAll({ after, limit: PAGE, client });
      // A page's events of each stream, folded at once (a history aggregate would copy per event).
      const pageEvents = new Map<string, { type: string; events: E[] }>();
      for (const recorded of page) {
        if (!states.has(recorded.streamType)) continue;
        const entry = pageEvents.get(recorded.streamId) ?? { type: recorded.streamType, events: [] };
        entry.events.push(spec.codec.decode(recorded));
        pageEvents.set(recorded.streamId, entry);
      }
      for (const [streamId, { type, events }] of pageEvents) {
        const rows = spec.streams[type] as StreamRows<E>;
        const ofType = states.get(type) as Map<string, unknown>;
        ofType.set(streamId, rows.fold(events, ofType.has(streamId) ? ofType.get(streamId) : rows.initialState()));
      }
      const last = page.at(-1);
      if (!last || page.length < PAGE) break;
      after = last.globalPosition;
    }
    const counts: Record<string, number> = {};
    for (const [type, rows] of Object.entries(spec.streams)) {
      const final = [...(states.get(type) as Map<string, unknown>)].map(([streamId, state]) => ({ streamId, state }));
      counts[type] = 0;
      for (let from = 0; from < final.length; from += SAVE_BATCH)
        counts[type] += await rows.save(client, final.slice(from, from + SAVE_BATCH));
    }
    await spec.rebuilt?.(client);
    return counts;
  });
}
