import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { ensureDatabase, freePort, startEmbeddedPostgres } from "../src/index.js";

async function query(url: string, sql: string, params: unknown[] = []) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql, params);
  } finally {
    await client.end();
  }
}

describe("startEmbeddedPostgres", () => {
  let root: string;
  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "rdm-embedded-pg-"));
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("serves SQL on 127.0.0.1 and keeps data across a restart", async () => {
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
  });

  it("ensureDatabase is idempotent and safe under concurrent calls", async () => {
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
  });

  it("reports why a start failed", async () => {
    const port = await freePort();
    const server = await startEmbeddedPostgres({ dataDir: path.join(root, "busy"), port });
    try {
      // A second server on the same folder must refuse (postmaster.pid lock) with a readable error.
      await expect(startEmbeddedPostgres({ dataDir: path.join(root, "busy"), port: await freePort() })).rejects.toThrow(
        /PostgreSQL did not start/,
      );
    } finally {
      await server.stop();
    }
  });
});
