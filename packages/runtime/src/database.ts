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
  // A bounded wait for a connection: while the server cannot be reached (a connect that hangs),
  // callers fail (UNAVAILABLE) instead of queueing until their deadline. Long enough that a burst
  // of commands queueing for a pooled connection on a busy machine waits rather than fails (a
  // refused or dropped connection fails at once anyway).
  // TCP keepalive: a server that went silent (a host lost, a partition; no FIN or RST ever comes)
  // fails the connection's query once the kernel's probes go unanswered, instead of leaving a
  // relay cycle or a consumer's transaction waiting for good.
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 20,
    connectionTimeoutMillis: 30_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  });
  // A connection that breaks (server restart, kill, network) must not crash the process. The pool
  // listens to idle clients only; a checked-out client emits 'error' too (pg fails its query as
  // well), and with no listener Node would throw it. So every client gets a listener for its life;
  // the pool then drops the broken client and the next query opens a new connection.
  pool.on("connect", (client) => {
    client.on("error", (error) => options.logger?.warn({ err: error }, "database connection lost"));
  });
  // Idle clients' errors reach the pool as well; the client's own listener has logged them.
  pool.on("error", () => undefined);
  return pool;
}
