import { LRUCache } from "lru-cache";
import type { Aggregate, Snapshot } from "./command.js";
import type { DomainEvent } from "./event-codec.js";

interface Entry {
  aggregate: unknown;
  snapshot: Snapshot<unknown>;
}

/** Under jest: a cached state is frozen, so a decider or evolver that changes one throws. */
const freezeStates = process.env.NODE_ENV === "test";

function deepFreeze(value: unknown): void {
  if (typeof value !== "object" || value === null || Object.isFrozen(value)) return;
  if (ArrayBuffer.isView(value)) return; // typed arrays cannot be frozen; a decoded bytes field is one
  Object.freeze(value);
  for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<string | symbol, unknown>)[key]);
}

/**
 * The state of recently commanded streams, each as of a committed version: a command on one of
 * them reads and folds only the events after it (from any writer), not the whole stream. An entry
 * is only ever behind the stream, never ahead, so it needs no invalidation: it is put only after
 * a commit, or from a read outside a transaction (which sees committed events only). States are
 * shared between commands, so evolvers and deciders must not change the state they are given.
 */
export class StateCache {
  private readonly entries: LRUCache<string, Entry>;

  constructor(maxStreams: number) {
    this.entries = new LRUCache({ max: Math.max(1, maxStreams) });
  }

  get<S, E extends DomainEvent>(aggregate: Aggregate<S, E>, streamId: string): Snapshot<S> | undefined {
    const entry = this.entries.get(streamId);
    return entry?.aggregate === aggregate ? (entry.snapshot as Snapshot<S>) : undefined;
  }

  put<S, E extends DomainEvent>(aggregate: Aggregate<S, E>, streamId: string, snapshot: Snapshot<S>): void {
    const known = this.entries.get(streamId);
    if (known?.aggregate === aggregate && known.snapshot.version >= snapshot.version) return;
    if (freezeStates) deepFreeze(snapshot.state);
    this.entries.set(streamId, { aggregate, snapshot });
  }

  /** After a refused append: the stream may have been rewritten (e.g. a test's truncation). */
  forget(streamId: string): void {
    this.entries.delete(streamId);
  }
}
