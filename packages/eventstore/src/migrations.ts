import type { Pool } from "pg";

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export interface MigrationSet {
  /** Who owns these migrations, e.g. "eventstore", "relay", "release-read-model". Versions are per component. */
  component: string;
  migrations: Migration[];
}

/** One advisory-lock key for all migrations of a database (first key of the two-int form). */
const MIGRATION_LOCK_CLASS = 0x5244_4d01;

export class MigrationConflict extends Error {
  override readonly name = "MigrationConflict";
}

/**
 * Applies the pending migrations of one component, in version order, in one transaction.
 * A transaction-scoped advisory lock serializes concurrent runners (two replicas starting
 * together): the second waits, then finds everything applied and does nothing.
 * Returns the versions it applied.
 */
export async function runMigrations(pool: Pool, set: MigrationSet): Promise<number[]> {
  const sorted = [...set.migrations].sort((a, b) => a.version - b.version);
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock($1, hashtext($2))", [MIGRATION_LOCK_CLASS, "schema_migrations"]);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      component  text        NOT NULL,
      version    integer     NOT NULL,
      name       text        NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (component, version))`);
    const { rows } = await client.query<{ version: number; name: string }>(
      "SELECT version, name FROM schema_migrations WHERE component = $1",
      [set.component],
    );
    const applied = new Map(rows.map((r) => [r.version, r.name]));
    const done: number[] = [];
    for (const m of sorted) {
      const recorded = applied.get(m.version);
      if (recorded !== undefined) {
        if (recorded !== m.name) {
          throw new MigrationConflict(
            `${set.component} migration ${m.version} was applied as "${recorded}" but is now named "${m.name}"`,
          );
        }
        continue;
      }
      await client.query(m.sql);
      await client.query("INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)", [
        set.component,
        m.version,
        m.name,
      ]);
      done.push(m.version);
    }
    await client.query("COMMIT");
    return done;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/** The migrations of `set` not applied to the database yet (all of them on a database without any). */
export async function pendingMigrations(pool: Pool, set: MigrationSet): Promise<Migration[]> {
  const { rows: table } = await pool.query<{ name: string | null }>("SELECT to_regclass('schema_migrations') AS name");
  if (!table[0]?.name) return set.migrations;
  const { rows } = await pool.query<{ version: number }>("SELECT version FROM schema_migrations WHERE component = $1", [
    set.component,
  ]);
  const applied = new Set(rows.map((r) => r.version));
  return set.migrations.filter((m) => !applied.has(m.version));
}
