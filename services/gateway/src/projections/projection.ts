import { createRegistry, type DescMessage, fromBinary, type Message } from "@bufbuild/protobuf";
import { withTransaction } from "@rdm/eventstore";
import { type ChunkHandler, type CloudEvent, checkEvent, PermanentError } from "@rdm/messaging";
import { instantOf } from "@rdm/proto";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";

/** What every projected event carries, whatever its type. */
type WithMetadata = Message & { metadata?: EventMetadata };

/** One decoded event with its position in its stream. */
export interface ProjectedEvent<M extends WithMetadata = WithMetadata> {
  message: M;
  envelope: CloudEvent;
  /**
   * The stream version the event produced: a view row keeps the version it reflects and an
   * update applies only `WHERE version < $version` (see versionGuard), so a replay changes nothing.
   */
  version: bigint;
  /** The event's encoding, as published. */
  data: Uint8Array;
  /** When it happened (metadata), else when it was published. */
  occurredAt: Date;
  actor: string;
}

/**
 * A read model fed from one topic: the event types it handles, the tables it owns, and how one
 * event changes them inside the consumer's transaction. A projection built from shared rules
 * (the domain kernel) names their version; when it changes, `rebuild` refolds the stored views.
 */
export interface Projection<M extends WithMetadata = WithMetadata> {
  name: string;
  /** The topic, without the deployment's prefix. */
  topic: string;
  handles: readonly DescMessage[];
  migrations: { version: number; name: string; sql: string }[];
  rules?: { version: number; rebuild(tx: pg.PoolClient): Promise<void> };
  apply(event: ProjectedEvent<M>, tx: pg.PoolClient): Promise<void>;
  /**
   * The events of a chunk, in order, with the effect of `apply` on each in turn but fewer
   * statements. A topic's chunks go projection by projection only when each of its projections
   * has one (one that reads another's views, as the audit's subject completion does, needs them
   * event by event); else event by event.
   */
  applyAll?(events: ProjectedEvent<M>[], tx: pg.PoolClient): Promise<void>;
  /**
   * Where a topic's chunks go event by event: what this projection needs of each event, read in
   * turn between the other projections' updates, then written for the chunk at once. Only for a
   * projection that no other one reads (its rows are written after the chunk's other updates).
   */
  collected?: Collected;
}

/** A projection's per-event reads and its one write per chunk (see Projection.collected). */
export interface Collected {
  collect(event: ProjectedEvent, tx: pg.PoolClient): Promise<unknown>;
  write(items: unknown[], tx: pg.PoolClient): Promise<void>;
}

export const collected = <T>(
  collect: (event: ProjectedEvent, tx: pg.PoolClient) => Promise<T>,
  write: (items: T[], tx: pg.PoolClient) => Promise<void>,
): Collected => ({ collect, write: (items, tx) => write(items as T[], tx) });

/**
 * A CTE `serialized` for an insert that numbers rows from a sequence which readers follow: it
 * takes the transaction-level advisory lock named by the channel `$param` and NOTIFYs that
 * channel (delivered at commit). Joined to the inserted rows, it runs before any row is made, so
 * before any value is drawn from the sequence: transactions draw and commit one at a time, and a
 * reader resuming after the last number it saw misses none.
 */
export const serializedBy = (param: string) =>
  `serialized AS MATERIALIZED (SELECT pg_advisory_xact_lock(hashtext(${param})), pg_notify(${param}, ''))`;

/** `WHERE <column> < $<param>` (or `< <expression>`): the one version guard every view update uses. */
export const versionGuard = (column: string, param: number | string) =>
  `${column} < ${typeof param === "number" ? `$${param}` : param}`;

/**
 * The decoder of a projection's events: undefined for a type it does not handle (producers add
 * types to a topic; a read model skips what it does not know), PermanentError (dead letter) for
 * bytes that do not decode, a body that does not match its envelope or is about another stream,
 * or one that breaks the input rules (checkEvent), as every service's consumers dead-letter it.
 */
export function eventDecoder(handles: readonly DescMessage[]): (envelope: CloudEvent) => ProjectedEvent | undefined {
  const registry = createRegistry(...handles);
  return (envelope) => {
    const schema = registry.getMessage(envelope.type);
    if (!schema) return undefined;
    let message: WithMetadata;
    try {
      message = fromBinary(schema, envelope.data) as WithMetadata;
    } catch (error) {
      throw new PermanentError(`cannot decode ${envelope.type}: ${(error as Error).message}`);
    }
    checkEvent(envelope, schema, message);
    const metadata = message.metadata;
    return {
      message,
      envelope,
      data: envelope.data,
      version: metadata.streamVersion,
      occurredAt: instantOf(metadata.occurredAt, envelope.time),
      actor: metadata.actor,
    };
  };
}

interface TopicRoute {
  /** Decodes an event once for every projection of the topic. */
  decode: ReturnType<typeof eventDecoder>;
  projections: { projection: Projection; handles: ReadonlySet<string> }[];
  /** Every projection of the topic applies a chunk at once. */
  byChunk: boolean;
}

function topicRoutes(projections: readonly Projection[], topicPrefix: string) {
  const grouped = new Map<string, Projection[]>();
  for (const p of projections) {
    const topic = `${topicPrefix}${p.topic}`;
    grouped.set(topic, [...(grouped.get(topic) ?? []), p]);
  }
  const routes = new Map<string, TopicRoute>();
  for (const [topic, ps] of grouped) {
    routes.set(topic, {
      decode: eventDecoder([...new Set(ps.flatMap((p) => p.handles))]),
      projections: ps.map((projection) => ({
        projection,
        handles: new Set(projection.handles.map((h) => h.typeName)),
      })),
      byChunk: ps.every((p) => p.applyAll),
    });
  }
  return (topic: string) => {
    const route = routes.get(topic);
    if (!route) throw new PermanentError(`no projection for topic ${topic}`);
    return route;
  };
}

/**
 * The consumer's handler: each event applied by every projection of its topic, in the order they
 * are listed (a combined view listed after a service's own view may read what that one wrote),
 * all in the consumer's one transaction.
 */
export function projectionHandler(projections: readonly Projection[], topicPrefix: string) {
  const routeOf = topicRoutes(projections, topicPrefix);
  return async (envelope: CloudEvent, tx: pg.PoolClient, info: { topic: string }): Promise<void> => {
    const route = routeOf(info.topic);
    const event = route.decode(envelope);
    if (!event) return;
    for (const { projection, handles } of route.projections) {
      if (handles.has(event.message.$typeName)) await projection.apply(event, tx);
    }
  };
}

/**
 * The consumer's chunk handler: the events of one partition, with projectionHandler's effect.
 * Where every projection of the topic applies a chunk at once, each does in turn; else event by
 * event, but a projection with `collected` writes once for the chunk.
 */
export function projectionChunkHandler(projections: readonly Projection[], topicPrefix: string): ChunkHandler {
  const routeOf = topicRoutes(projections, topicPrefix);
  return async (events, tx) => {
    const topic = events[0]?.info.topic;
    if (topic === undefined) return;
    const route = routeOf(topic);
    if (!route.byChunk) {
      const pending = new Map<Collected, unknown[]>();
      for (const { event: envelope } of events) {
        const event = route.decode(envelope);
        if (!event) continue;
        for (const { projection, handles } of route.projections) {
          if (!handles.has(event.message.$typeName)) continue;
          const c = projection.collected;
          if (!c) {
            await projection.apply(event, tx);
            continue;
          }
          const items = pending.get(c) ?? [];
          pending.set(c, items);
          items.push(await c.collect(event, tx));
        }
      }
      for (const [c, items] of pending) await c.write(items, tx);
      return;
    }
    const decoded = events.flatMap(({ event }) => route.decode(event) ?? []);
    for (const { projection, handles } of route.projections) {
      const own = decoded.filter((e) => handles.has(e.message.$typeName));
      if (own.length) await projection.applyAll?.(own, tx);
    }
  };
}

/** The topics the projections read, each once. */
export const projectedTopics = (projections: readonly Projection[], topicPrefix: string) => [
  ...new Set(projections.map((p) => `${topicPrefix}${p.topic}`)),
];

export const projectionRulesMigration = {
  version: 1,
  name: "the rules version each projection's views were built with",
  sql: `CREATE TABLE gateway_projection_rules (projection text PRIMARY KEY, rules_version integer NOT NULL);`,
};

/**
 * Rebuilds a projection's views when the shared rules they were folded with changed (or when
 * no version was recorded: views from before the record). One replica at a time, before the
 * consumers start.
 */
export async function ensureRulesVersion(pool: pg.Pool, projection: Projection): Promise<boolean> {
  const rules = projection.rules;
  if (!rules) return false;
  return withTransaction(pool, async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext('rdm_gateway_projection_rules'), hashtext($1))", [
      projection.name,
    ]);
    const { rows } = await tx.query<{ rules_version: number }>(
      "SELECT rules_version FROM gateway_projection_rules WHERE projection = $1",
      [projection.name],
    );
    if (rows[0]?.rules_version === rules.version) return false;
    await rules.rebuild(tx);
    await tx.query(
      `INSERT INTO gateway_projection_rules (projection, rules_version) VALUES ($1, $2)
       ON CONFLICT (projection) DO UPDATE SET rules_version = EXCLUDED.rules_version`,
      [projection.name, rules.version],
    );
    return true;
  });
}
