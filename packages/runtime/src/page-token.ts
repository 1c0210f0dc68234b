/** Keyset page tokens, the same for every list API (gRPC and HTTP). */

export const UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const UUID = new RegExp(UUID_PATTERN);

export const isUuid = (value: string) => UUID.test(value);

/**
 * A timestamp exactly as Date#toISOString writes it (what tokens hold), not whatever Date.parse
 * tolerates: a forged token must not reach a query that casts it.
 */
export const isIsoTimestamp = (value: string) => {
  const date = new Date(value);
  return !Number.isNaN(date.getTime()) && date.toISOString() === value;
};

/** The most bytes of rows one page holds: under the 4 MiB a gRPC client receives by default. */
const MAX_PAGE_BYTES = 3 * 1024 * 1024;

/**
 * How many of the leading rows, of these sizes in bytes, one page holds: as many as fit in
 * MAX_PAGE_BYTES, and at least one (a row is never too large to be listed alone).
 */
export function rowsFitting(sizes: readonly number[]): number {
  let bytes = 0;
  for (const [count, size] of sizes.entries()) {
    bytes += size;
    if (count > 0 && bytes > MAX_PAGE_BYTES) return count;
  }
  return sizes.length;
}

/** A page token: the sort key and id of the last row of the previous page, base64url JSON. */
export const encodePageToken = (sortKey: string, id: string) =>
  Buffer.from(JSON.stringify([sortKey, id])).toString("base64url");

/**
 * The [sortKey, id] a token holds, or undefined when it is not one of ours or its parts fail
 * the checks (the query casts them, so a forged token must not reach it).
 */
export function decodePageToken(
  token: string,
  isSortKey: (key: string) => boolean,
  isId: (id: string) => boolean,
): [string, string] | undefined {
  try {
    const value = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (!Array.isArray(value) || value.length !== 2 || !value.every((v) => typeof v === "string")) return undefined;
    const [key, id] = value as [string, string];
    return isSortKey(key) && isId(id) ? [key, id] : undefined;
  } catch {
    return undefined;
  }
}
