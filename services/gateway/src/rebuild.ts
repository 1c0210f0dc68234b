/**
 * Rebuilding every gateway view from the topics, in place: the views are emptied, the projection
 * consumer group is replaced by a new one (a generation number kept in the database), and the
 * new group reads every topic from the beginning until it has handled everything that was on
 * them when the rebuild began. A gateway started afterwards goes on with that group.
 */
import { withTransaction } from "@rdm/eventstore";
import { HANDLED_EVENTS_TABLE } from "@rdm/messaging";
import type pg from "pg";
import type { Projection } from "./projections/projection.js";

export const consumerGenerationMigration = {
  version: 1,
  name: "generation of the projection consumer group, raised by every rebuild",
  sql: `CREATE TABLE gateway_consumer_generation (
          singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
          generation integer NOT NULL
        );
        INSERT INTO gateway_consumer_generation (generation) VALUES (0);`,
};

/** Held shared by every running gateway, exclusively by a rebuild: the two never overlap. */
const PROJECTING_LOCK = "hashtext('rdm_gateway_projecting')";

/** The group of a generation: generation 0 is the configured group itself. */
export const groupOf = (baseGroup: string, generation: number) =>
  generation === 0 ? baseGroup : `${baseGroup}.rebuild-${generation}`;

/** The consumer group the projections use now. */
export async function currentConsumerGroup(pool: pg.Pool | pg.PoolClient, baseGroup: string): Promise<string> {
  const { rows } = await pool.query<{ generation: number }>("SELECT generation FROM gateway_consumer_generation");
  return groupOf(baseGroup, rows[0]?.generation ?? 0);
}

/**
 * Takes the projecting lock on a connection of its own and keeps it until the returned function
 * is called: shared by a gateway (waits while a rebuild runs), exclusive for a rebuild (refused
 * while a gateway runs).
 */
export async function holdProjectingLock(pool: pg.Pool, mode: "shared" | "exclusive"): Promise<() => void> {
  const client = await pool.connect();
  try {
    if (mode === "shared") await client.query(`SELECT pg_advisory_lock_shared(${PROJECTING_LOCK})`);
    else {
      const { rows } = await client.query<{ locked: boolean }>(
        `SELECT pg_try_advisory_lock(${PROJECTING_LOCK}) AS locked`,
      );
      if (!rows[0]?.locked) throw new Error("a gateway is projecting into this database: stop it before a rebuild");
    }
  } catch (error) {
    client.release();
    throw error;
  }
  // Ending the session releases the lock, whichever mode.
  return () => client.release(true);
}

/** The tables the projections' migrations create: what a rebuild empties. */
export function projectionTables(projections: readonly Projection[]): string[] {
  const sql = projections.flatMap((p) => p.migrations.map((m) => m.sql)).join("\n");
  return [...new Set([...sql.matchAll(/CREATE TABLE (\w+)/g)].map((m) => m[1] as string))];
}

/**
 * Empties every view and moves to the next consumer group, in one transaction; returns the new
 * group. Sequences are not restarted: an SSE client resuming with an id from before the rebuild
 * receives the rebuilt entries after it, never an id it saw before.
 */
export async function resetProjections(
  pool: pg.Pool,
  projections: readonly Projection[],
  baseGroup: string,
): Promise<{ previousGroup: string; group: string }> {
  return withTransaction(pool, async (tx) => {
    const previousGroup = await currentConsumerGroup(tx, baseGroup);
    // A table a later migration dropped is not there to empty.
    const { rows: tables } = await tx.query<{ name: string }>(
      "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
      [projectionTables(projections)],
    );
    await tx.query(`TRUNCATE ${tables.map((t) => t.name).join(", ")}`);
    const { rows } = await tx.query<{ generation: number }>(
      "UPDATE gateway_consumer_generation SET generation = generation + 1 RETURNING generation",
    );
    await tx.query(`DELETE FROM ${HANDLED_EVENTS_TABLE} WHERE consumer_group = $1`, [previousGroup]);
    return { previousGroup, group: groupOf(baseGroup, rows[0]?.generation ?? 1) };
  });
}
