/**
 * The last of `items` for each key, in the order the keys first came: one row a key, as an upsert
 * of many rows needs (ON CONFLICT DO UPDATE may touch a row only once a statement).
 */
export const lastPerKey = <T>(items: readonly T[], key: (item: T) => string): T[] => [
  ...new Map(items.map((item) => [key(item), item])).values(),
];

/**
 * SQL for the text array a JSON array holds, in the array's order: how a column that unnest
 * cannot take as an array (its rows' arrays differ in length) goes as `jsonb` and comes back.
 */
export const textArrayOfJson = (json: string) =>
  `ARRAY(SELECT v FROM jsonb_array_elements_text(${json}) WITH ORDINALITY AS e (v, n) ORDER BY n)`;

/**
 * Rows as one array per column, as `unnest($1::t1[], $2::t2[], …)` takes them: one statement
 * writes many rows. `width` arrays even when there is no row. A column of bytes (every value a
 * Uint8Array or null, one at least) goes as a binary `bytea[]` (byteaArray).
 */
export const unnestColumns = (rows: readonly (readonly unknown[])[], width: number): unknown[] =>
  Array.from({ length: width }, (_, i) => {
    const column = rows.map((row) => row[i]);
    const bytes =
      column.some((v) => v instanceof Uint8Array) && column.every((v) => v == null || v instanceof Uint8Array);
    return bytes ? byteaArray(column as (Uint8Array | null)[]) : column;
  });

/** PostgreSQL's type id of bytea (fixed for built-in types). */
const BYTEA_OID = 17;

/**
 * A `bytea[]` parameter in PostgreSQL's binary array format. node-postgres writes a JS array as
 * a text literal, each element as hex: a release of 1 MiB became 2 MiB of hex to build, measure
 * and copy, and for PostgreSQL to parse back. A Buffer parameter goes as binary, as it is; bind it
 * as `$n::bytea[]`. Null elements stay null.
 */
export function byteaArray(items: readonly (Uint8Array | null | undefined)[]): Buffer {
  // Header: dimensions, has-nulls flag, element type; then the one dimension's length and lower bound.
  const headerBytes = items.length === 0 ? 12 : 20;
  let size = headerBytes;
  for (const item of items) size += 4 + (item?.byteLength ?? 0);
  const buffer = Buffer.allocUnsafe(size);
  buffer.writeInt32BE(items.length === 0 ? 0 : 1, 0);
  buffer.writeInt32BE(items.some((item) => item == null) ? 1 : 0, 4);
  buffer.writeInt32BE(BYTEA_OID, 8);
  if (items.length === 0) return buffer;
  buffer.writeInt32BE(items.length, 12);
  buffer.writeInt32BE(1, 16);
  let at = headerBytes;
  for (const item of items) {
    if (item == null) {
      at = buffer.writeInt32BE(-1, at);
      continue;
    }
    at = buffer.writeInt32BE(item.byteLength, at);
    buffer.set(item, at);
    at += item.byteLength;
  }
  return buffer;
}
