import type { Aggregate } from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import type pg from "pg";
import { type ConfigurationEvent, configurationCodec } from "./event-codec.js";

/**
 * The configuration service's streams are decided on their whole history: CI and artifact ids
 * are bare stream ids, so a decision first checks which kind of stream the id names (the
 * registration it opens with), then folds it. The stream type is the id up to its first "-"
 * ("ci", "artifact", "baseline").
 */
const HISTORY: Aggregate<ConfigurationEvent[], ConfigurationEvent> = {
  initialState: () => [],
  evolve: (history, event) => [...history, event],
  // One copy for many events (a stream read whole, a rebuild's page), not one per event.
  fold: (events, history) => history.concat(events),
};

/**
 * The one history aggregate, typed for `E`: the command handler keeps a stream's state only for
 * the aggregate object that folded it, so a new object per command would read every stream whole.
 */
export const historyOf = <E extends ConfigurationEvent>(): Aggregate<E[], E> => HISTORY as unknown as Aggregate<E[], E>;

/** A stream's events, decoded, for queries (or on a transaction's connection). */
export async function readHistory<E extends ConfigurationEvent>(
  store: EventStore,
  streamId: string,
  client?: pg.PoolClient,
): Promise<E[]> {
  const recorded = await store.readStream(streamId, client ? { client } : undefined);
  return recorded.map((event) => configurationCodec.decode(event) as E);
}
