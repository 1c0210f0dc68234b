// The notification hub against a real PostgreSQL: its LISTEN connection is a pooled client, and
// what it attaches to that client must leave with it, or it acts on whoever holds the client next.
import { createLogger } from "@rdm/observability";
import { createTestDatabase, type TestDatabase, waitFor } from "@rdm/testkit";
import pg from "pg";
import { createNotificationHub } from "../src/http/notification-hub.js";

let db: TestDatabase;
let admin: pg.Client;

beforeAll(async () => {
  db = await createTestDatabase("gateway_hub");
  admin = new pg.Client({ connectionString: db.url });
  await admin.connect();
});

afterAll(async () => {
  await admin?.end();
  await db?.drop();
});

/** A pool of one connection, so the hub's LISTEN client is the one the next caller gets. */
function onePool() {
  const pool = new pg.Pool({ connectionString: db.url, max: 1 });
  // A lost idle connection is the pool's to drop (as in openDatabase), not a crash.
  pool.on("error", () => undefined);
  return pool;
}

/** Subscribes, and resolves once a NOTIFY has reached the subscriber: the hub listens. */
async function listening(hub: ReturnType<typeof createNotificationHub>, channel: string) {
  let notified = false;
  const unsubscribe = hub.subscribe(() => {
    notified = true;
  });
  await waitFor(
    async () => {
      await admin.query(`NOTIFY ${channel}`);
      return notified;
    },
    { description: "a notification through the hub" },
  );
  return unsubscribe;
}

test("once the hub gives its connection back, a break of that connection is the next holder's alone", async () => {
  const pool = onePool();
  const hub = createNotificationHub(pool, "hub_handover", createLogger("gateway", "silent"));
  try {
    const unsubscribe = await listening(hub, "hub_handover");
    unsubscribe();
    await waitFor(() => pool.idleCount === 1, { description: "the LISTEN connection back in the pool" });

    const client = await pool.connect();
    // Every error, not just the first: the server's "terminating connection" and the socket's end
    // ("Connection terminated unexpectedly") can both come before this test gets to release it.
    const lost = new Promise<Error>((resolve) => client.on("error", resolve));
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    await admin.query("SELECT pg_terminate_backend($1)", [rows[0]?.pid]);
    const error = await lost;
    // Only this holder released the client: the hub's handler had left with its checkout.
    expect(() => client.release(error)).not.toThrow();
  } finally {
    await hub.close();
    await pool.end();
  }
});

test("a lost LISTEN connection goes back to the pool once, and the next subscriber listens again", async () => {
  const pool = onePool();
  const hub = createNotificationHub(pool, "hub_lost", createLogger("gateway", "silent"));
  try {
    const unsubscribe = await listening(hub, "hub_lost");
    await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN hub_lost'");
    await waitFor(() => pool.totalCount === 0, { description: "the lost connection dropped by the pool" });
    unsubscribe();
    // The pool holds one connection: listening again proves the lost one was not kept.
    (await listening(hub, "hub_lost"))();
  } finally {
    await hub.close();
    await pool.end();
  }
});
