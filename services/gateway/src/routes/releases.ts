import type { FastifyInstance } from "fastify";
import type pg from "pg";

const releaseSchema = {
  type: "object",
  properties: {
    releaseId: { type: "string", format: "uuid" },
    key: { type: "string", examples: ["REL-2026-0042"] },
    title: { type: "string" },
    description: { type: "string" },
    type: { type: "string", enum: ["MAJOR", "MINOR", "EMERGENCY"] },
    category: { type: "string" },
    owner: { type: "string" },
    coordinator: { type: "string" },
    stakeholders: { type: "array", items: { type: "string" } },
    risk: { type: "string", enum: ["UNSPECIFIED", "LOW", "MEDIUM", "HIGH", "CRITICAL"] },
    plannedWindow: {
      type: ["object", "null"],
      properties: {
        start: { type: ["string", "null"], format: "date-time" },
        end: { type: ["string", "null"], format: "date-time" },
      },
    },
    phase: { type: "string" },
    registeredBy: { type: "string" },
    registeredAt: { type: "string", format: "date-time" },
    version: { type: "integer" },
    updatedAt: { type: "string", format: "date-time" },
  },
} as const;

const problemSchema = {
  type: "object",
  properties: {
    type: { type: "string" },
    title: { type: "string" },
    status: { type: "integer" },
    detail: { type: "string" },
  },
} as const;

interface ReleaseRow {
  release_id: string;
  key: string;
  title: string;
  description: string;
  type: string;
  category: string;
  owner: string;
  coordinator: string;
  stakeholders: string[];
  risk: string;
  planned_start: Date | null;
  planned_end: Date | null;
  phase: string;
  registered_by: string;
  registered_at: Date;
  version: string;
  updated_at: Date;
}

const toRelease = (r: ReleaseRow) => ({
  releaseId: r.release_id,
  key: r.key,
  title: r.title,
  description: r.description,
  type: r.type,
  category: r.category,
  owner: r.owner,
  coordinator: r.coordinator,
  stakeholders: r.stakeholders,
  risk: r.risk,
  plannedWindow: r.planned_start || r.planned_end ? { start: r.planned_start, end: r.planned_end } : null,
  phase: r.phase,
  registeredBy: r.registered_by,
  registeredAt: r.registered_at,
  version: Number(r.version),
  updatedAt: r.updated_at,
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Opaque keyset cursor: the (registered_at, release_id) of the last row of the previous page. */
const encodeCursor = (row: ReleaseRow) =>
  Buffer.from(JSON.stringify([row.registered_at.toISOString(), row.release_id])).toString("base64url");

function decodeCursor(token: string): [string, string] | undefined {
  try {
    const value = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (
      Array.isArray(value) &&
      value.length === 2 &&
      typeof value[0] === "string" &&
      typeof value[1] === "string" &&
      !Number.isNaN(Date.parse(value[0])) &&
      UUID.test(value[1])
    ) {
      return value as [string, string];
    }
  } catch {}
  return undefined;
}

export function releaseRoutes(app: FastifyInstance, pool: pg.Pool) {
  app.get<{ Params: { id: string } }>(
    "/v1/releases/:id",
    {
      schema: {
        tags: ["releases"],
        summary: "One release by id",
        params: { type: "object", properties: { id: { type: "string", format: "uuid" } }, required: ["id"] },
        response: { 200: releaseSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      const { rows } = await pool.query<ReleaseRow>("SELECT * FROM release_view WHERE release_id = $1", [
        request.params.id,
      ]);
      const row = rows[0];
      if (!row)
        return reply.code(404).send({
          type: "about:blank",
          title: "Not Found",
          status: 404,
          detail: `release ${request.params.id} not found`,
        });
      return toRelease(row);
    },
  );

  app.get<{ Querystring: { pageSize: number; pageToken?: string; phase?: string; type?: string; owner?: string } }>(
    "/v1/releases",
    {
      schema: {
        tags: ["releases"],
        summary: "Releases, newest first, paged",
        querystring: {
          type: "object",
          properties: {
            pageSize: { type: "integer", minimum: 1, maximum: 200, default: 50 },
            pageToken: { type: "string", maxLength: 200 },
            phase: { type: "string" },
            type: { type: "string", enum: ["MAJOR", "MINOR", "EMERGENCY"] },
            owner: { type: "string" },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: "object",
            properties: {
              releases: { type: "array", items: releaseSchema },
              nextPageToken: { type: ["string", "null"] },
            },
          },
          400: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { pageSize, pageToken, phase, type, owner } = request.query;
      const where: string[] = [];
      const args: unknown[] = [];
      if (pageToken !== undefined) {
        const cursor = decodeCursor(pageToken);
        if (!cursor)
          return reply
            .code(400)
            .send({ type: "about:blank", title: "Bad Request", status: 400, detail: "pageToken is not valid" });
        args.push(cursor[0], cursor[1]);
        where.push(`(registered_at, release_id) < ($${args.length - 1}::timestamptz, $${args.length}::uuid)`);
      }
      for (const [column, value] of [
        ["phase", phase],
        ["type", type],
        ["owner", owner],
      ] as const) {
        if (value === undefined) continue;
        args.push(value);
        where.push(`${column} = $${args.length}`);
      }
      args.push(pageSize + 1);
      const { rows } = await pool.query<ReleaseRow>(
        `SELECT * FROM release_view ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY registered_at DESC, release_id DESC LIMIT $${args.length}`,
        args,
      );
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      return {
        releases: page.map(toRelease),
        nextPageToken: rows.length > pageSize && last ? encodeCursor(last) : null,
      };
    },
  );
}
