// A fresh database with the release service's tables as they were at one migration, to test the
// migrations after it on rows stored before them.
import { eventStoreMigrations, runMigrations } from "@rdm/eventstore";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase } from "@rdm/testkit";
import { releaseMigrations } from "../src/store/release-tables.js";

const until = (version: number) => ({
  component: "release",
  migrations: releaseMigrations.filter((migration) => migration.version <= version),
});

/** Runs `use` on a database migrated up to `version`, with `migrateTo` for the later ones; drops it after. */
export async function withDatabaseAt(
  name: string,
  version: number,
  use: (
    pool: Awaited<ReturnType<typeof openDatabase>>,
    migrateTo: (version: number) => Promise<unknown>,
  ) => Promise<void>,
): Promise<void> {
  const db = await createTestDatabase(name);
  const pool = await openDatabase(db.url);
  try {
    await runMigrations(pool, eventStoreMigrations);
    await runMigrations(pool, until(version));
    await use(pool, (later) => runMigrations(pool, until(later)));
  } finally {
    await pool.end();
    await db.drop();
  }
}
