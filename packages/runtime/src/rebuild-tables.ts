import { rebuildQueryTables } from "@rdm/command-handler";
import { EventStore, eventStoreMigrations, pendingMigrations } from "@rdm/eventstore";
import { CommandRefused, runDatabaseCommand } from "./database-command.js";
import type { GrpcServiceDefinition } from "./grpc-service.js";

/**
 * `pnpm --filter @rdm/<service> rebuild-tables`, with the service's DATABASE_URL: its query tables
 * written again from its event store (design §3, property 5). The service may be running: the
 * rebuild locks the tables, so its commands wait for it and then write their own rows. The
 * database must hold this version's tables (the service started on it once): the command migrates
 * nothing, so a wrong DATABASE_URL is refused rather than given a service's tables.
 */
export async function rebuildTablesMain(name: string, definition: () => GrpcServiceDefinition): Promise<void> {
  await runDatabaseCommand(`${name} rebuild-tables`, async (pool) => {
    const service = definition();
    const queryTables = service.queryTables;
    if (!queryTables) throw new CommandRefused("the service has no query tables to rebuild");
    const pending = [
      ...(await pendingMigrations(pool, eventStoreMigrations)),
      ...(await pendingMigrations(pool, { component: service.name, migrations: service.migrations ?? [] })),
    ];
    if (pending.length > 0)
      throw new CommandRefused(
        `the database does not hold the ${name} service's tables of this version ` +
          `(${pending.length} migrations not applied): is DATABASE_URL its database? Start this version of the service on it once first`,
      );
    const counts = await rebuildQueryTables(pool, new EventStore(pool), queryTables);
    const written = Object.entries(counts).map(([type, count]) => `${count} ${type}`);
    return `${name} rebuild-tables: rebuilt ${queryTables.tables.join(", ")} from ${written.join(", ")} streams`;
  });
}
