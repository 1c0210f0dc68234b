// A view request waiting on the database when the database watch finds it gone is answered 503
// at once (Retry-After), not held until the database answers again; requests after it are
// refused at once until it is back. The handler of the request answered so runs on until its
// query returns, and its late answer is dropped without a word.
import { randomUUID } from "node:crypto";
import { createLogger } from "@rdm/observability";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase, type TestDatabase, waitFor } from "@rdm/testkit";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { migrateGateway } from "../src/service.js";
import { listeningGateway } from "./gateway-app.js";

let db: TestDatabase;
let pool: pg.Pool;
let app: FastifyInstance;
let gatewayUrl: string;
let bearer: string;
let available = true;
const lostListeners: (() => void)[] = [];
/** What the gateway logged at warn and above. */
const logged: { msg?: string; err?: { code?: string } }[] = [];
/** What the database watch does when its probe fails. */
const loseDatabase = () => {
  available = false;
  for (const listener of lostListeners) listener();
};

beforeAll(async () => {
  db = await createTestDatabase("gateway_database_lost");
  pool = await openDatabase(db.url);
  await migrateGateway(pool, createLogger("gateway", "fatal"));
  ({
    app,
    url: gatewayUrl,
    bearer,
  } = await listeningGateway(pool, {
    databaseAvailable: () => available,
    onDatabaseLost: (listener) => lostListeners.push(listener),
    logger: createLogger("gateway", "warn", { write: (line) => logged.push(JSON.parse(line)) }),
  }));
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
  await db?.drop();
});

/** Holds the release view locked (a read of it waits, as on a database that hangs) until `run` ends. */
async function withViewLocked(run: (locker: pg.Client, waiting: Promise<Response>) => Promise<void>) {
  const locker = new pg.Client({ connectionString: db.url });
  await locker.connect();
  try {
    await locker.query("BEGIN");
    await locker.query("LOCK TABLE release_view IN ACCESS EXCLUSIVE MODE");
    // A deadline far off, so that a request left waiting fails the test instead of hanging it.
    const waiting = fetch(`${gatewayUrl}/v1/releases/${randomUUID()}`, {
      headers: { authorization: bearer },
      signal: AbortSignal.timeout(20_000),
    });
    await waitFor(
      async () =>
        (
          await locker.query<{ n: number }>(
            "SELECT count(*)::int AS n FROM pg_locks WHERE relation = 'release_view'::regclass AND NOT granted",
          )
        ).rows[0]?.n === 1,
      { timeoutMs: 10_000, description: "the read waiting on the locked view" },
    );
    await run(locker, waiting);
  } finally {
    available = true;
    await locker.query("ROLLBACK");
    await locker.end();
  }
}

/** Once the late read's connection is back in the pool and a turn of the event loop later, its handler has ended. */
async function lateHandlerEnded() {
  await waitFor(() => pool.idleCount === pool.totalCount, { description: "the late read's connection released" });
  await new Promise((resolve) => setImmediate(resolve));
}

test("a request waiting on the database when it is found gone is answered 503 at once", async () => {
  logged.length = 0;
  await withViewLocked(async (_locker, waiting) => {
    loseDatabase();
    const answer = await waiting;
    expect({ status: answer.status, retryAfter: answer.headers.get("retry-after"), body: await answer.json() }).toEqual(
      {
        status: 503,
        retryAfter: "1",
        body: expect.objectContaining({ status: 503, detail: "database unavailable" }),
      },
    );
    // Refused at once while it is gone.
    expect((await fetch(`${gatewayUrl}/v1/releases`, { headers: { authorization: bearer } })).status).toBe(503);
  });
  // The read that was answered 503 now gets its rows and returns: what it sends is dropped.
  await lateHandlerEnded();
  expect(logged.map((line) => line.err?.code ?? line.msg)).toEqual(["database lost while the request waited on it"]);
  expect((await fetch(`${gatewayUrl}/v1/releases`, { headers: { authorization: bearer } })).status).toBe(200);
});

test("the handler of a request answered so that then fails logs no error", async () => {
  logged.length = 0;
  await withViewLocked(async (locker, waiting) => {
    loseDatabase();
    expect((await waiting).status).toBe(503);
    // The read it waits on fails, as it does when the database is really gone.
    await locker.query(
      "SELECT pg_cancel_backend(pid) FROM pg_locks WHERE relation = 'release_view'::regclass AND NOT granted",
    );
    await lateHandlerEnded();
  });
  expect(logged.map((line) => line.err?.code ?? line.msg)).toEqual(["database lost while the request waited on it"]);
});
