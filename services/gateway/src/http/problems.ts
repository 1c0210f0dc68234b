import { UUID_PATTERN } from "@rdm/runtime/process";
import type { FastifyReply, FastifyRequest } from "fastify";

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

/** RFC 9457's media type: what every error answer is sent as. */
export const PROBLEM_CONTENT_TYPE = "application/problem+json";

export const problem = (status: number, title: string, detail: string) => ({
  type: "about:blank",
  title,
  status,
  detail,
});

/** Answers a problem: the status, `application/problem+json`, the body. */
export const sendProblem = (reply: FastifyReply, status: number, title: string, detail: string) =>
  reply
    .code(status)
    .type(`${PROBLEM_CONTENT_TYPE}; charset=utf-8`)
    .send(problem(status, title, detail));

export const notFound = (reply: FastifyReply, detail: string) => sendProblem(reply, 404, "Not Found", detail);

export const badRequest = (reply: FastifyReply, detail: string) => sendProblem(reply, 400, "Bad Request", detail);

/** The database is gone or hanging: worth a retry soon. */
export const databaseUnavailable = (reply: FastifyReply) =>
  sendProblem(reply.header("retry-after", "1"), 503, "Service Unavailable", "database unavailable");

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

type QuerySchema = { properties?: Record<string, { type?: unknown; minimum?: number; maximum?: number }> } | undefined;

/**
 * preValidation hook: an integer query parameter is written in decimal digits. ajv's type
 * coercion reads "1e400" as Infinity and lets it through an integer schema whatever its
 * maximum (PostgreSQL then refuses it on every poll of an event stream), and "1e3" as 1000.
 * Past 16 significant digits a value is past every bound of these schemas (and, long enough,
 * Infinity): it is refused here, naming the bound as ajv would.
 */
export async function refuseNonDecimalIntegers(request: FastifyRequest, reply: FastifyReply) {
  const properties = (request.routeOptions.schema?.querystring as QuerySchema)?.properties ?? {};
  const query = request.query as Record<string, unknown>;
  for (const [name, property] of Object.entries(properties)) {
    const value = query[name];
    if (property.type !== "integer" || value === undefined) continue;
    const digits = typeof value === "string" && /^(-?)0*(\d+)$/.exec(value);
    if (!digits) return badRequest(reply, `querystring/${name} must be an integer written in decimal digits`);
    if ((digits[2] as string).length <= 16) continue;
    const bound = digits[1]
      ? `>= ${property.minimum ?? Number.MIN_SAFE_INTEGER}`
      : `<= ${property.maximum ?? Number.MAX_SAFE_INTEGER}`;
    return badRequest(reply, `querystring/${name} must be ${bound}`);
  }
}

/**
 * A query or path value with a NUL character: 400. PostgreSQL text cannot hold one, so such a
 * value matches nothing; refused here, before an event stream answers 200 and only then meets the
 * database's refusal at its first read.
 */
export async function refuseNulCharacters(request: FastifyRequest, reply: FastifyReply) {
  const places = { querystring: request.query, params: request.params } as Record<string, unknown>;
  for (const [where, values] of Object.entries(places)) {
    for (const [name, value] of Object.entries((values as Record<string, unknown> | undefined) ?? {})) {
      if ((Array.isArray(value) ? value : [value]).some((v) => typeof v === "string" && v.includes("\u0000")))
        return badRequest(reply, `${where}/${name} must not contain a NUL character`);
    }
  }
}
