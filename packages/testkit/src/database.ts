import { databaseUrl } from "@rdm/embedded";
import pg from "pg";
import { ensureTestServers } from "./fallback.js";
import { DATABASE_URL_ENV } from "./servers.js";
import { uniqueId } from "./wait.js";

export interface TestDatabase {
  /** Connection URL of the new, empty database. */
  url: string;
  /** Drops the database once the sessions on it have ended, terminating any still open after 5 s. Idempotent. */
  drop(): Promise<void>;
}

/** A fresh, empty database on the shared test PostgreSQL server, named `<prefix>_<unique>`. */
export async function createTestDatabase(prefix = "test"): Promise<TestDatabase> {
  const adminUrl = process.env[DATABASE_URL_ENV] ?? (await ensureTestServers()).databaseUrl;
  const safePrefix =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9_]+/g, "_")
      .replace(/^_+|_+$/g, "")
      .slice(0, 30) || "test";
  const name = uniqueId(safePrefix).replace(/-/g, "_");
  await withAdmin(adminUrl, (client) => client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`));
  let dropped: Promise<void> | undefined;
  return {
    url: databaseUrl(adminUrl, name),
    drop: () => {
      dropped ??= withAdmin(adminUrl, async (client) => {
        const drop = `DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)}`;
        // pg's Pool.end() resolves before its clients' sessions have ended: a forced drop then
        // terminates them, and a pool without an error listener throws. Without FORCE the server
        // waits up to 5 s for them; only sessions a test left open are terminated.
        await client.query(drop).catch(async (error: { code?: string }) => {
          if (error.code !== "55006") throw error;
          await client.query(`${drop} WITH (FORCE)`);
        });
      });
      return dropped;
    },
  };
}

async function withAdmin<T>(adminUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
