import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import {
  type EmbeddedPostgresOptions,
  ensureDatabase,
  freePort,
  startEmbeddedPostgres as start,
} from "../src/index.js";

async function query(url: string, sql: string, params: unknown[] = []) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

// Each test initialises and starts one or two clusters: on a busy 2-core machine that takes a while.
const CLUSTER_TEST_TIMEOUT_MS = 150_000;

describe("startEmbeddedPostgres", () => {
  let root: string;
  // As root, a cluster the postgres user cannot reach lives elsewhere (StartedPostgres.dataDir).
  const serverDataDirs = new Set<string>();
  const startEmbeddedPostgres = async (options: EmbeddedPostgresOptions) => {
    // Throwaway clusters: durability buys nothing here, speed does (the machine may be busy).
    const server = await start({ initdbFlags: ["--no-sync"], settings: { fsync: "off" }, ...options });
    serverDataDirs.add(server.dataDir);
    return server;
  };
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "rdm-embedded-pg-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
    for (const dir of serverDataDirs) {
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}.origin`, { force: true }); // beside a stand-in (as root), naming its folder
    }
  });

  it(
    "runs from a folder only its owner can enter, and leaves that folder's permissions alone",
    async () => {
      // mkdtemp makes a 0700 folder: as root, the postgres user cannot enter it.
      const privateRoot = await mkdtemp(path.join(root, "private-"));
      const modes = async () => Promise.all([root, privateRoot].map(async (dir) => (await stat(dir)).mode & 0o777));
      const before = await modes();
      expect(before[1]).toBe(0o700);
      const server = await startEmbeddedPostgres({
        dataDir: path.join(privateRoot, "cluster"),
        port: await freePort(),
      });
      try {
        const rows = await query(server.adminUrl, "SELECT 1 AS one");
        expect(rows.rows).toEqual([{ one: 1 }]);
      } finally {
        await server.stop();
      }
      expect(await modes()).toEqual(before);
    },
    CLUSTER_TEST_TIMEOUT_MS,
  );

  it(
    "starts empty once its data folder was deleted, wherever the server kept the data",
    async () => {
      // As root, the data of a folder the postgres user cannot reach is kept elsewhere: deleting
      // the folder asked for must still throw the cluster away, as it does for anyone else.
      const dataDir = path.join(await mkdtemp(path.join(root, "private-")), ".data", "postgres");
      const port = await freePort();
      const first = await startEmbeddedPostgres({ dataDir, port });
      try {
        await query(first.adminUrl, "CREATE TABLE thrown_away (v text)");
      } finally {
        await first.stop();
      }
      await rm(path.dirname(dataDir), { recursive: true, force: true });
      // Also when the stand-in is older than the record of its folder (a clone at a deleted one's path).
      await rm(`${first.dataDir}.origin`, { force: true });

      const second = await startEmbeddedPostgres({ dataDir, port });
      try {
        const rows = await query(second.adminUrl, "SELECT to_regclass('thrown_away') AS t");
        expect(rows.rows).toEqual([{ t: null }]);
      } finally {
        await second.stop();
      }
    },
    CLUSTER_TEST_TIMEOUT_MS,
  );

  it(
    "serves SQL on 127.0.0.1 and keeps data across a restart",
    async () => {
      const dataDir = path.join(root, "nested", "cluster");
      const port = await freePort();
      const first = await startEmbeddedPostgres({ dataDir, port, password: "secret" });
      try {
        expect(first.adminUrl).toBe(`postgres://postgres:secret@127.0.0.1:${port}/postgres`);
        const url = await ensureDatabase(first.adminUrl, "keepme");
        await query(url, "CREATE TABLE t (v text)");
        await query(url, "INSERT INTO t VALUES ($1)", ["survives"]);
        const listen = await query(first.adminUrl, "SHOW listen_addresses");
        expect(listen.rows[0].listen_addresses).toBe("127.0.0.1");
      } finally {
        await first.stop();
      }
      await expect(query(first.adminUrl, "SELECT 1")).rejects.toThrow();

      const second = await startEmbeddedPostgres({ dataDir, port, password: "secret" });
      try {
        const url = await ensureDatabase(second.adminUrl, "keepme");
        const rows = await query(url, "SELECT v FROM t");
        expect(rows.rows).toEqual([{ v: "survives" }]);
      } finally {
        await second.stop();
      }
    },
    CLUSTER_TEST_TIMEOUT_MS,
  );

  it(
    "ensureDatabase is idempotent and safe under concurrent calls",
    async () => {
      const port = await freePort();
      const server = await startEmbeddedPostgres({ dataDir: path.join(root, "concurrent"), port });
      try {
        const urls = await Promise.all(Array.from({ length: 6 }, () => ensureDatabase(server.adminUrl, "same_db")));
        expect(new Set(urls).size).toBe(1);
        const rows = await query(urls[0] as string, "SELECT current_database() AS db");
        expect(rows.rows[0].db).toBe("same_db");
        const count = await query(
          server.adminUrl,
          "SELECT count(*)::int AS n FROM pg_database WHERE datname = 'same_db'",
        );
        expect(count.rows[0].n).toBe(1);
      } finally {
        await server.stop();
      }
    },
    CLUSTER_TEST_TIMEOUT_MS,
  );

  it(
    "reports why a start failed",
    async () => {
      const port = await freePort();
      const server = await startEmbeddedPostgres({ dataDir: path.join(root, "busy"), port });
      try {
        // A second server on the same folder must refuse (postmaster.pid lock) with a readable error.
        await expect(
          startEmbeddedPostgres({ dataDir: path.join(root, "busy"), port: await freePort() }),
        ).rejects.toThrow(/PostgreSQL did not start/);
      } finally {
        await server.stop();
      }
    },
    CLUSTER_TEST_TIMEOUT_MS,
  );
});
