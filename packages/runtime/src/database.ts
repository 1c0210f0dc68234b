import type { Logger } from "@rdm/observability";
import pg from "pg";

/**
 * Opens a pool on the component's own database, creating the database first when it does not
 * exist yet and the configured user may create it (design §2: one database per service).
 */
export async function openDatabase(url: string, options: { max?: number; logger?: Logger } = {}): Promise<pg.Pool> {
  try {
    const probe = new pg.Client({ connectionString: url });
    await probe.connect();
    await probe.end();
  } catch (error) {
    if ((error as { code?: string }).code !== "3D000") throw error;
    const target = new URL(url);
    const name = decodeURIComponent(target.pathname.slice(1));
    const admin = new URL(url);
    admin.pathname = "/postgres";
    const client = new pg.Client({ connectionString: admin.toString() });
    await client.connect();
    try {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    } catch (createError) {
      // Another replica created it between our probe and this statement.
      if ((createError as { code?: string }).code !== "42P04") throw createError;
    } finally {
      await client.end();
    }
  }
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 20 });
  // An idle connection that breaks (server restart, network) must not crash the process:
  // the pool drops it and the next query opens a new one.
  pool.on("error", (error) => options.logger?.warn({ err: error }, "idle database connection lost"));
  return pool;
}
