// Yearly keys on real PostgreSQL: numbers from each year's sequence, continuing an old counter
// table, distinct across instances taking blocks concurrently.
import { runMigrations } from "@rdm/eventstore";
import { createTestDatabase, type TestDatabase } from "@rdm/testkit";
import pg from "pg";
import { YearlyKeys, yearlyNumbersSql } from "../src/index.js";

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase("yearly_keys");
  pool = new pg.Pool({ connectionString: db.url });
  await runMigrations(pool, {
    component: "keys-test",
    migrations: [
      { version: 1, name: "counter", sql: "CREATE TABLE test_keys (year int PRIMARY KEY, last int NOT NULL)" },
      { version: 2, name: "sequence of a fresh install", sql: yearlyNumbersSql("next_fresh_number", "fresh_key") },
    ],
  });
});

afterAll(async () => {
  await pool.end();
  await db.drop();
});

const format = (year: number, n: number) => `T-${year}-${String(n).padStart(4, "0")}`;

test("each year's keys start at 1, one after the other within a block", async () => {
  const keys = new YearlyKeys(pool, { functionName: "next_fresh_number", format, blockSize: 3 });
  const taken = [];
  for (let i = 0; i < 5; i++) taken.push(await keys.next(2031));
  expect(taken).toEqual(["T-2031-0001", "T-2031-0002", "T-2031-0003", "T-2031-0004", "T-2031-0005"]);
  expect(await keys.next(2032)).toBe("T-2032-0001");
});

test("a counter table's years continue in their sequences, and the table is gone", async () => {
  await pool.query("INSERT INTO test_keys (year, last) VALUES (2026, 41), (2025, 7)");
  await runMigrations(pool, {
    component: "keys-test",
    migrations: [
      { version: 3, name: "from the counter", sql: yearlyNumbersSql("next_test_number", "test_key", "test_keys") },
    ],
  });
  const keys = new YearlyKeys(pool, { functionName: "next_test_number", format });
  expect(await keys.next(2026)).toBe("T-2026-0042");
  expect(await keys.next(2025)).toBe("T-2025-0008");
  expect(await keys.next(2027)).toBe("T-2027-0001");
  const { rows } = await pool.query("SELECT to_regclass('test_keys') AS counter");
  expect(rows[0].counter).toBeNull();
});

test("instances taking a new year's first blocks together get distinct keys", async () => {
  const instances = Array.from(
    { length: 4 },
    () => new YearlyKeys(pool, { functionName: "next_fresh_number", format, blockSize: 5 }),
  );
  const keys = await Promise.all(Array.from({ length: 60 }, (_, i) => (instances[i % 4] as YearlyKeys).next(2040)));
  expect(new Set(keys).size).toBe(60);
  expect(keys.every((k) => /^T-2040-\d{4}$/.test(k))).toBe(true);
});
