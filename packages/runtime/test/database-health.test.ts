import { jest } from "@jest/globals";
import type { Logger } from "@rdm/observability";
import { createTestDatabase, type TestDatabase, waitFor } from "@rdm/testkit";
import pg from "pg";
import { type ProbeSession, watchDatabase } from "../src/database-health.js";

const quiet = { info: () => {}, error: () => {} } as unknown as Logger;
const noPool = {} as pg.Pool;

afterEach(() => {
  jest.useRealTimers();
});

describe("timing (fake timers, a scripted session)", () => {
  test("a database that stops answering just after a probe is reported within 2.5 s, and its return within a probe", async () => {
    jest.useFakeTimers();
    let hanging = false;
    // A server that hangs keeps its sockets: the query neither answers nor fails.
    const openSession = async (): Promise<ProbeSession> => ({
      query: () => (hanging ? new Promise(() => {}) : Promise.resolve()),
      close: () => {},
    });
    const changes: { at: number; available: boolean }[] = [];
    let since = Date.now();
    const watch = watchDatabase(noPool, {
      logger: quiet,
      openSession,
      onChange: (available) => changes.push({ at: Date.now() - since, available }),
    });
    try {
      // Probes answered at 500 and 1,000 ms; the server stops right after the second one.
      await jest.advanceTimersByTimeAsync(1_000);
      expect(watch.available).toBe(true);
      hanging = true;
      since = Date.now();
      await jest.advanceTimersByTimeAsync(3_000);
      // 2,500 ms, and the one fake timers give the timeout's turn after input (setImmediate).
      expect(changes).toEqual([{ at: 2_501, available: false }]);
      expect(watch.available).toBe(false);
      // Back: the probe still waiting on the frozen server times out first, then the next one answers.
      hanging = false;
      since = Date.now();
      await jest.advanceTimersByTimeAsync(3_000);
      expect(changes.at(-1)).toEqual({ at: expect.any(Number), available: true });
      expect(changes.at(-1)?.at).toBeLessThanOrEqual(2_500);
    } finally {
      watch.stop();
    }
  });

  test("a session lost since the last probe is replaced within the probe; one that cannot be opened is unavailability", async () => {
    jest.useFakeTimers();
    let opened = 0;
    let refusing = false;
    const sessions: { lost: boolean; closed: boolean }[] = [];
    const openSession = async (): Promise<ProbeSession> => {
      if (refusing) throw new Error("connection refused");
      opened++;
      const session = { lost: false, closed: false };
      sessions.push(session);
      return {
        query: () => (session.lost ? Promise.reject(new Error("terminated")) : Promise.resolve()),
        close: () => {
          session.closed = true;
        },
      };
    };
    const changes: boolean[] = [];
    const watch = watchDatabase(noPool, { logger: quiet, openSession, onChange: (a) => changes.push(a) });
    try {
      await jest.advanceTimersByTimeAsync(1_000);
      expect(opened).toBe(1); // kept between probes
      (sessions[0] as { lost: boolean }).lost = true;
      await jest.advanceTimersByTimeAsync(1_000);
      expect({ opened, changes, firstClosed: sessions[0]?.closed }).toEqual({
        opened: 2,
        changes: [],
        firstClosed: true,
      });
      (sessions[1] as { lost: boolean }).lost = true;
      refusing = true;
      await jest.advanceTimersByTimeAsync(600);
      expect(changes).toEqual([false]);
      refusing = false;
      await jest.advanceTimersByTimeAsync(600);
      expect(changes).toEqual([false, true]);
    } finally {
      watch.stop();
    }
  });
});

describe("on a real PostgreSQL", () => {
  let db: TestDatabase;
  let pool: pg.Pool;
  let admin: pg.Client;
  beforeAll(async () => {
    db = await createTestDatabase("database_watch");
    pool = new pg.Pool({ connectionString: db.url, max: 2, application_name: "watched" });
    admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
  });
  afterAll(async () => {
    await admin?.end();
    await pool?.end();
    await db?.drop();
  });

  /** The watch's session: the pool's settings (so its name), idle between probes, `SELECT 1` its last statement. */
  const watchSession = async () => {
    const { rows } = await admin.query<{ pid: number; answered: Date }>(
      `SELECT pid, query_start AS answered FROM pg_stat_activity
        WHERE datname = current_database() AND application_name = 'watched' AND state = 'idle' AND query = 'SELECT 1'`,
    );
    return rows[0];
  };

  test("a pool whose every connection is busy is not a database gone, nor is a lost session", async () => {
    const changes: boolean[] = [];
    const watch = watchDatabase(pool, { logger: quiet, onChange: (a) => changes.push(a) });
    const held = await Promise.all([pool.connect(), pool.connect()]);
    try {
      // Both of the pool's connections in open transactions: a query of the pool's waits for them.
      for (const client of held) await client.query("BEGIN");
      const { rows } = await admin.query<{ now: Date }>("SELECT clock_timestamp() AS now");
      const heldSince = (rows[0] as { now: Date }).now.getTime();
      // Probes keep answering for longer than a probe may take (2 s) plus its pause.
      await waitFor(async () => ((await watchSession())?.answered.getTime() ?? 0) > heldSince + 3_000, {
        timeoutMs: 15_000,
        description: "the watch's probes answered for 3 s while the pool had no free connection",
      });
      expect({ changes, available: watch.available }).toEqual({ changes: [], available: true });

      const lost = (await watchSession())?.pid;
      await admin.query("SELECT pg_terminate_backend($1)", [lost]);
      await waitFor(async () => ((await watchSession())?.pid ?? lost) !== lost, {
        timeoutMs: 15_000,
        description: "a new session of the watch answering",
      });
      expect({ changes, available: watch.available }).toEqual({ changes: [], available: true });
    } finally {
      for (const client of held) {
        await client.query("ROLLBACK");
        client.release();
      }
      watch.stop();
    }
  });
  test("an answer that came while this process was paused counts before the probe's timeout", async () => {
    // A pause of this process (a long collection, SIGSTOP) longer than the probe's timeout, just
    // after a probe was sent: when it resumes, the timeout is due and the answer is waiting.
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    let probes = 0;
    const openSession = async (): Promise<ProbeSession> => ({
      query: () => {
        const answered = client.query("SELECT 1");
        if (probes++ === 1)
          setImmediate(() => {
            const until = Date.now() + 2_500;
            while (Date.now() < until) {} // the pause
          });
        return answered;
      },
      close: () => {},
    });
    const changes: boolean[] = [];
    const watch = watchDatabase(pool, { logger: quiet, openSession, onChange: (a) => changes.push(a) });
    try {
      await waitFor(() => probes >= 4, { timeoutMs: 15_000, description: "probes after the pause" });
      expect(changes).toEqual([]);
    } finally {
      watch.stop();
      await client.end();
    }
  });
});
