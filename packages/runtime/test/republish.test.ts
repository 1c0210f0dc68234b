// The operator's republish command (`pnpm --filter @rdm/runtime republish`) against real
// PostgreSQL: it sets the relay's checkpoint back to the start, says so, and says what is wrong
// when it cannot.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { runMigrations } from "@rdm/eventstore";
import { relayMigrations } from "@rdm/relay";
import { createTestDatabase, type TestDatabase } from "@rdm/testkit";
import pg from "pg";

const command = fileURLToPath(new URL("../dist/republish-main.js", import.meta.url));
let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase("republish");
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
  await runMigrations(pool, relayMigrations);
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

async function republish(env: NodeJS.ProcessEnv) {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [command], { env });
    return { status: 0, output: stdout.trim() };
  } catch (error) {
    const failed = error as { code: number; stderr: string };
    return { status: failed.code, output: failed.stderr.trim() };
  }
}

const withoutDatabase = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "DATABASE_URL"));

test("before any relay ran, it says so; after, the checkpoint goes back to the start", async () => {
  expect(await republish({ ...withoutDatabase(), DATABASE_URL: db.url })).toEqual({
    status: 0,
    output: "republish: no relay has published from this database yet; it will start from the start",
  });
  await pool.query(
    "INSERT INTO relay_checkpoints (name, transaction_id, global_position, kafka_cluster_id) VALUES ('default', '812', 42, 'c-1')",
  );
  expect(await republish({ ...withoutDatabase(), DATABASE_URL: db.url })).toEqual({
    status: 0,
    output: "republish: the relay publishes every event again from the start",
  });
  const { rows } = await pool.query("SELECT transaction_id::text, global_position::int FROM relay_checkpoints");
  expect(rows).toEqual([{ transaction_id: "0", global_position: 0 }]);
});

test("without DATABASE_URL, or with a database it cannot reach, it fails with a message", async () => {
  expect(await republish(withoutDatabase())).toEqual({
    status: 2,
    output: "republish: set DATABASE_URL to the service's database",
  });
  const unreachable = await republish({ ...withoutDatabase(), DATABASE_URL: "postgres://nobody@127.0.0.1:1/none" });
  expect(unreachable.status).toBe(1);
  expect(unreachable.output).toMatch(/^republish failed: /);
});
