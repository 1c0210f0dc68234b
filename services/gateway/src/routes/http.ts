import type { FastifyReply } from "fastify";

// What every route module shares: RFC 9457 problem answers and opaque keyset page tokens.

export const problemSchema = {
  type: "object",
  properties: {
    type: { type: "string" },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string" },
  },
} as const;

export const notFound = (reply: FastifyReply, detail: string) =>
  reply.code(404).send({ type: "about:blank", title: "Not Found", status: 404, detail });

export const badRequest = (reply: FastifyReply, detail: string) =>
  reply.code(400).send({ type: "about:blank", title: "Bad Request", status: 400, detail });

const UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const UUID = new RegExp(UUID_PATTERN);

/** An id PostgreSQL's uuid type takes: ajv's "uuid" format alone also admits a urn:uuid: prefix. */
export const uuidSchema = { type: "string", format: "uuid", pattern: UUID_PATTERN } as const;

/** A page token: the sort key and id of the last row of the previous page, base64url JSON. */
export const encodeCursor = (sortKey: string, id: string) =>
  Buffer.from(JSON.stringify([sortKey, id])).toString("base64url");

/**
 * A timestamp as encodeCursor writes it (Date#toISOString), not whatever Date.parse tolerates.
 * Queries take it as a Date: pg writes BC years as PostgreSQL reads them, the ISO string it is not.
 */
export const isTimestamp = (value: string) => {
  const date = new Date(value);
  return !Number.isNaN(date.getTime()) && date.toISOString() === value;
};
export const isUuid = (value: string) => UUID.test(value);

/**
 * The [sortKey, id] a token holds, or undefined when it is not one of ours or its parts fail
 * the checks (the query casts them, so a forged token must not reach it).
 */
export function decodeCursor(
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

/** `column = $n` conditions for the filters that are set, with their arguments; callers add more. */
export function equalityFilters(filters: Record<string, unknown>): { where: string[]; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  for (const [column, value] of Object.entries(filters)) {
    if (value === undefined) continue;
    args.push(value);
    where.push(`${column} = $${args.length}`);
  }
  return { where, args };
}
