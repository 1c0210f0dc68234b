import { UUID_PATTERN } from "@rdm/runtime";
import type { FastifyReply } from "fastify";

// What every route family shares: RFC 9457 problem answers, ids, and keyset filters.

export const problemSchema = {
  type: "object",
  properties: {
    type: { type: "string" },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string" },
  },
} as const;

export const problem = (status: number, title: string, detail: string) => ({
  type: "about:blank",
  title,
  status,
  detail,
});

export const notFound = (reply: FastifyReply, detail: string) =>
  reply.code(404).send({ type: "about:blank", title: "Not Found", status: 404, detail });

export const badRequest = (reply: FastifyReply, detail: string) =>
  reply.code(400).send({ type: "about:blank", title: "Bad Request", status: 400, detail });

/** An id PostgreSQL's uuid type takes: ajv's "uuid" format alone also admits a urn:uuid: prefix. */
export const uuidSchema = { type: "string", format: "uuid", pattern: UUID_PATTERN } as const;

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
