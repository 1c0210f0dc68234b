// The rows the release service's query tables hold, to compare the live ones with the rebuilt.
import type pg from "pg";
import { releaseQueryTables } from "../src/store/query-tables.js";

/**
 * Every row of each table the rebuild writes, all columns, by primary key (each table's first
 * column). Bytes come as hex: a release's snapshot holds up to 1 MiB, which toEqual would compare
 * as an array, for seconds.
 */
export async function queryTableRows(db: Pick<pg.Pool, "query">): Promise<Record<string, Record<string, unknown>[]>> {
  const tables: Record<string, Record<string, unknown>[]> = {};
  for (const table of releaseQueryTables.tables) {
    const { rows } = await db.query<Record<string, unknown>>(`SELECT * FROM ${table} ORDER BY 1`);
    tables[table] = rows.map((row) =>
      Object.fromEntries(Object.entries(row).map(([c, v]) => [c, Buffer.isBuffer(v) ? v.toString("hex") : v])),
    );
  }
  return tables;
}
