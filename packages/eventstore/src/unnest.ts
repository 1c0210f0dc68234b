/**
 * Rows as one array per column, as `unnest($1::t1[], $2::t2[], …)` takes them: one statement
 * writes many rows. `width` arrays even when there is no row.
 */
export const unnestColumns = (rows: readonly (readonly unknown[])[], width: number): unknown[][] =>
  Array.from({ length: width }, (_, i) => rows.map((row) => row[i]));
