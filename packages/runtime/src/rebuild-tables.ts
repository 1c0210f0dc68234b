import { rebuildQueryTables } from "@rdm/command-handler";
import { EventStore, eventStoreMigrations, runMigrations } from "@rdm/eventstore";
import pg from "pg";
import type { GrpcServiceDefinition } from "./grpc-service.js";

/**
 * `pnpm --filter @rdm/<service> rebuild-tables`, with the service's DATABASE_URL: its query tables
 * written again from its event store (design §3, property 5). The service may be running: the
 * rebuild locks the tables, so its commands wait for it and then write their own rows.
 */
export async function rebuildTablesMain(definition: GrpcServiceDefinition, env = process.env): Promise<void> {
  const url = env.DATABASE_URL;
  if (!url || !definition.queryTables) {
    console.error(
      definition.queryTables
        ? `${definition.name} rebuild-tables: set DATABASE_URL to the service's database`
        : `${definition.name} rebuild-tables: the service has no query tables to rebuild`,
    );
    process.exitCode = 2;
    return;
  }
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    // The tables as this version of the service writes them.
    await runMigrations(pool, eventStoreMigrations);
    if (definition.migrations?.length)
      await runMigrations(pool, { component: definition.name, migrations: definition.migrations });
    const counts = await rebuildQueryTables(pool, new EventStore(pool), definition.queryTables);
    const written = Object.entries(counts).map(([type, count]) => `${count} ${type}`);
    console.log(
      `${definition.name} rebuild-tables: rebuilt ${definition.queryTables.tables.join(", ")} from ${written.join(", ")} streams`,
    );
  } catch (error) {
    console.error(`${definition.name} rebuild-tables failed: ${(error as Error).message}`);
    process.exitCode = 1;
  } finally {
    await pool.end();
  }
}
