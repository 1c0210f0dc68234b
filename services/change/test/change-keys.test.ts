// Change keys on real PostgreSQL: a database raised before keys came from a sequence per year
// continues each year's count (migration 3).
import { runMigrations } from "@rdm/eventstore";
import { createTestDatabase } from "@rdm/testkit";
import pg from "pg";
import { changeKeys, readModelMigrations } from "../src/store/read-model.js";

test("keys continue each year's counter in its sequence (distinct across instances: @rdm/keys)", async () => {
  const db = await createTestDatabase("change_keys");
  const pool = new pg.Pool({ connectionString: db.url });
  try {
    await runMigrations(pool, { component: "change", migrations: readModelMigrations.filter((m) => m.version <= 2) });
    await pool.query("INSERT INTO change_keys (year, last) VALUES (2026, 41), (2025, 7)");
    await runMigrations(pool, { component: "change", migrations: readModelMigrations });
    const keys = changeKeys(pool, 5);
    expect(await keys.next(2026)).toBe("CHG-2026-0042");
    expect(await keys.next(2025)).toBe("CHG-2025-0008");
    expect(await keys.next(2027)).toBe("CHG-2027-0001");
  } finally {
    await pool.end();
    await db.drop();
  }
});
