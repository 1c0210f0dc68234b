import { createTestDatabase, type TestDatabase } from "@rdm/testkit";
import pg from "pg";
import { byteaArray, unnestColumns } from "../src/index.js";

let db: TestDatabase;
let pool: pg.Pool;

beforeAll(async () => {
  db = await createTestDatabase("unnest");
  pool = new pg.Pool({ connectionString: db.url, max: 2 });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/** What PostgreSQL took from the parameter, element by element in base64 (null stays null). */
async function roundTrip(parameter: unknown): Promise<(string | null)[]> {
  const { rows } = await pool.query<{ b: Buffer | null }>(
    "SELECT b FROM unnest($1::bytea[]) WITH ORDINALITY AS t (b, n) ORDER BY n",
    [parameter],
  );
  return rows.map((row) => row.b?.toString("base64") ?? null);
}

function base64(items: (Uint8Array | null)[]): (string | null)[] {
  return items.map((item) => (item ? Buffer.from(item).toString("base64") : null));
}

describe("bytea[] parameters in binary", () => {
  const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);
  const large = new Uint8Array(1024 * 1024).map((_, i) => (i * 31) % 251);

  test("every byte value, empty and null elements and a 1 MiB element arrive as sent", async () => {
    const items = [everyByte, new Uint8Array(0), null, large, Buffer.from('\\"{},x')];
    expect(await roundTrip(byteaArray(items))).toEqual(base64(items));
  });

  test("an empty array is an empty bytea[]", async () => {
    expect(await roundTrip(byteaArray([]))).toEqual([]);
  });

  test("a view into a larger buffer sends only its own bytes", async () => {
    const view = everyByte.subarray(10, 20);
    expect(await roundTrip(byteaArray([view]))).toEqual(base64([view]));
  });

  test("unnestColumns sends a column of bytes as binary bytea[], other columns as they are", async () => {
    const columns = unnestColumns(
      [
        ["a", everyByte, null],
        ["b", null, null],
      ],
      3,
    );
    expect(columns[0]).toEqual(["a", "b"]);
    expect(Buffer.isBuffer(columns[1])).toBe(true);
    expect(columns[2]).toEqual([null, null]);
    expect(await roundTrip(columns[1])).toEqual(base64([everyByte, null]));
  });
});
