import type { Pool, PoolClient } from "pg";

/** One row per (consumer group, event id) whose effect has committed. */
export const HANDLED_EVENTS_TABLE = "rdm_handled_events";

export const CONSUMER_TABLES_SQL = `
CREATE TABLE IF NOT EXISTS ${HANDLED_EVENTS_TABLE} (
  consumer_group text NOT NULL,
  event_id text NOT NULL,
  topic text NOT NULL,
  "partition" integer NOT NULL,
  "offset" bigint NOT NULL,
  handled_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (consumer_group, event_id)
)`;

/**
 * Creates the handled-events table if it is missing. Two processes running
 * `CREATE TABLE IF NOT EXISTS` at once can still collide on the catalog's unique index,
 * so creation is serialized with a transaction-scoped advisory lock.
 */
export async function ensureConsumerTables(pool: Pool): Promise<void> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [HANDLED_EVENTS_TABLE]);
    await client.query(CONSUMER_TABLES_SQL);
    await client.query("COMMIT");
  } catch (error) {
    broken = await rollback(client, error as Error);
    throw error;
  } finally {
    client.release(broken);
  }
}

/**
 * Inserts the handled-marker inside the caller's transaction. Returns false when the event
 * was already handled by this group. A concurrent transaction inserting the same marker
 * makes this one wait for it: if it commits, this returns false; if it rolls back, true.
 */
export async function markHandled(
  tx: PoolClient,
  marker: { consumerGroup: string; eventId: string; topic: string; partition: number; offset: string },
): Promise<boolean> {
  const result = await tx.query({
    // Named, as the other per-event statements: parsed and planned once per connection.
    name: "rdm_mark_handled",
    text: `INSERT INTO ${HANDLED_EVENTS_TABLE} (consumer_group, event_id, topic, "partition", "offset")
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (consumer_group, event_id) DO NOTHING`,
    values: [marker.consumerGroup, marker.eventId, marker.topic, marker.partition, marker.offset],
  });
  return result.rowCount === 1;
}

/** Whether this group's marker for the event has committed (a read: it takes no transaction id). */
export async function isHandled(tx: PoolClient, consumerGroup: string, eventId: string): Promise<boolean> {
  const { rowCount } = await tx.query({
    name: "rdm_is_handled",
    text: `SELECT 1 FROM ${HANDLED_EVENTS_TABLE} WHERE consumer_group = $1 AND event_id = $2`,
    values: [consumerGroup, eventId],
  });
  return rowCount === 1;
}

/**
 * markHandled for several events in one statement, in their order: for each, whether it is the
 * first (false for an id already marked by this group, and for a repeat of an id earlier in the list).
 */
export async function markAllHandled(
  tx: PoolClient,
  consumerGroup: string,
  markers: readonly { eventId: string; topic: string; partition: number; offset: string }[],
): Promise<boolean[]> {
  const { rows } = await tx.query<{ event_id: string }>({
    name: "rdm_mark_all_handled",
    text: `INSERT INTO ${HANDLED_EVENTS_TABLE} (consumer_group, event_id, topic, "partition", "offset")
     SELECT $1, m.event_id, m.topic, m.part, m.off
       FROM unnest($2::text[], $3::text[], $4::integer[], $5::bigint[]) WITH ORDINALITY AS m(event_id, topic, part, off, n)
      ORDER BY m.n
     ON CONFLICT (consumer_group, event_id) DO NOTHING RETURNING event_id`,
    values: [
      consumerGroup,
      markers.map((m) => m.eventId),
      markers.map((m) => m.topic),
      markers.map((m) => m.partition),
      markers.map((m) => m.offset),
    ],
  });
  const inserted = new Set(rows.map((r) => r.event_id));
  // A repeated id was inserted once, for its first occurrence: delete answers true only then.
  return markers.map((m) => inserted.delete(m.eventId));
}

/** Rolls back; returns the error to release the connection with if it cannot be trusted any more. */
export async function rollback(client: PoolClient, cause: Error): Promise<Error | undefined> {
  try {
    await client.query("ROLLBACK");
    return undefined;
  } catch {
    return cause;
  }
}
