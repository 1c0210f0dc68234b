import { createHash } from "node:crypto";

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
  // Years 0001-9999, the input rules' range: Date writes others signed and with six digits, and
  // PostgreSQL has no year 0.
  return !Number.isNaN(date.getTime()) && date.toISOString() === value && /^(?!0000)\d{4}-/.test(value);
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

/** Bytes of digest in a scope: ListChanges' tokens (a timestamp and a uuid) must stay within 100 characters. */
const SCOPE_BYTES = 6;

/**
 * What ties a page token to the request that made it (AIP-158): a digest of the list's name and
 * the request's other fields, all but pageSize and pageToken (the page size may change between
 * pages), in base64url. Keys are sorted and lists are sets, so the same request gives the same
 * scope however it is written; an absent field is one left out. A protobuf request has every
 * field (its defaults too); an HTTP list passes its filters as it reads them (a case-folded id,
 * parsed lists).
 */
export function pageTokenScope(list: string, request: object): string {
  const { pageSize: _size, pageToken: _token, ...filters } = request as Record<string, unknown>;
  return createHash("sha256")
    .update(`${list}\n${JSON.stringify(filters, canonical)}`)
    .digest()
    .subarray(0, SCOPE_BYTES)
    .toString("base64url");
}

/** JSON.stringify's replacer for scopes: keys sorted, lists as sets, protobuf-es' own `$` fields left out. */
function canonical(key: string, value: unknown): unknown {
  if (key.startsWith("$")) return undefined;
  if (typeof value === "bigint") return String(value);
  if (Array.isArray(value)) return [...new Set(value.map((item) => JSON.stringify(item, canonical)))].sort();
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).sort(([a], [b]) => (a < b ? -1 : 1)));
  }
  return value;
}

/**
 * A page token: the scope's bytes, then the sort key and id of the last row of the previous page
 * as JSON, in base64url.
 */
export const encodePageToken = (scope: string, sortKey: string, id: string) =>
  Buffer.concat([Buffer.from(scope, "base64url"), Buffer.from(JSON.stringify([sortKey, id]))]).toString("base64url");

/** Why a page token is refused: the words that follow the field's name in the error. */
export type PageTokenFault = "is not valid" | "does not belong to this list and filters";

/**
 * The [sortKey, id] a token holds, or why it is refused: it is not one of ours (tokens of before
 * scopes are not either), another list or other filters made it (its rows would be the wrong
 * ones), or its parts fail the checks (the query casts them, so a forged token must not reach it).
 */
export function decodePageToken(
  token: string,
  scope: string,
  isSortKey: (key: string) => boolean,
  isId: (id: string) => boolean,
): [string, string] | PageTokenFault {
  const bytes = Buffer.from(token, "base64url");
  let value: unknown;
  try {
    value = JSON.parse(bytes.subarray(SCOPE_BYTES).toString("utf8"));
  } catch {
    return "is not valid";
  }
  // No part may hold U+0000: PostgreSQL text cannot, and the query takes both parts.
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    !value.every((v) => typeof v === "string" && !v.includes("\u0000"))
  )
    return "is not valid";
  if (bytes.subarray(0, SCOPE_BYTES).toString("base64url") !== scope) return "does not belong to this list and filters";
  const [key, id] = value as [string, string];
  return isSortKey(key) && isId(id) ? [key, id] : "is not valid";
}
