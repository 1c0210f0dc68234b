import { decodePageToken, encodePageToken, pageTokenScope } from "@rdm/runtime/process";
import { badRequest, equalityFilters, notFound, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { type CiRow, impactOf, toCi } from "./queries.js";
import { CI_STATUSES, CI_TYPES, ciDetailSchema, ciSchema } from "./schemas.js";

const ciList: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/cmdb/items",
    {
      schema: {
        tags: ["configuration"],
        summary: "Configuration items by name, filtered by type, owner, status or name substring",
        querystring: {
          type: "object",
          properties: {
            type: { type: "string", enum: CI_TYPES },
            owner: { type: "string" },
            status: { type: "string", enum: CI_STATUSES },
            q: { type: "string", maxLength: 200 },
            pageSize: { type: "integer", minimum: 1, maximum: 500, default: 100 },
            // Carries the last name (up to 200 characters, several UTF-8 bytes each) in base64url.
            pageToken: { type: "string", maxLength: 4096 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: "object",
            properties: { items: { type: "array", items: ciSchema }, nextPageToken: { type: ["string", "null"] } },
          },
          400: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { type, owner, status, q, pageSize, pageToken } = request.query;
      const { where, args } = equalityFilters({ type, owner, status });
      // Case folding by PostgreSQL's lower() throughout, sort key and page token included: JavaScript's
      // toLowerCase differs for some names (İ, a final Σ), which would skip or repeat rows.
      if (q) {
        args.push(q);
        where.push(`strpos(lower(name), lower($${args.length})) > 0`);
      }
      const scope = pageTokenScope("gateway.GET /v1/cmdb/items", { type, owner, status, q: q || undefined });
      if (pageToken !== undefined) {
        const cursor = decodePageToken(
          pageToken,
          scope,
          () => true,
          () => true,
        );
        if (typeof cursor === "string") return badRequest(reply, `pageToken ${cursor}`);
        args.push(cursor[0], cursor[1]);
        where.push(`(lower(name), ci_id) > ($${args.length - 1}, $${args.length})`);
      }
      args.push(pageSize + 1);
      const { rows } = await pool.query<CiRow & { sort_name: string }>(
        `SELECT *, lower(name) AS sort_name FROM cmdb_ci_view ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY lower(name), ci_id LIMIT $${args.length}`,
        args,
      );
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        items: page.map(toCi),
        nextPageToken: rows.length > pageSize && last ? encodePageToken(scope, last.sort_name, last.ci_id) : null,
      };
    },
  );
};

const ciDetail: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/cmdb/items/:id",
    {
      schema: {
        tags: ["configuration"],
        summary: "One configuration item with its relationships (both directions) and its history",
        params: { type: "object", properties: { id: { type: "string", maxLength: 200 } }, required: ["id"] },
        response: {
          200: ciDetailSchema,
          404: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const { rows } = await pool.query<CiRow>("SELECT * FROM cmdb_ci_view WHERE ci_id = $1", [id]);
      const row = rows[0];
      if (!row) return notFound(reply, `configuration item ${id} not found`);
      const relationships = await pool.query<{
        source_ci_id: string;
        source_name: string | null;
        type: string;
        target_ci_id: string;
        target_name: string | null;
      }>(
        `SELECT r.source_ci_id, s.name AS source_name, r.type, r.target_ci_id, t.name AS target_name
         FROM cmdb_relationship_view r
         LEFT JOIN cmdb_ci_view s ON s.ci_id = r.source_ci_id
         LEFT JOIN cmdb_ci_view t ON t.ci_id = r.target_ci_id
         WHERE r.source_ci_id = $1 OR r.target_ci_id = $1
         ORDER BY r.source_ci_id, r.type, r.target_ci_id`,
        [id],
      );
      const history = await pool.query<{
        version: string;
        occurred_at: Date;
        actor: string;
        event_type: string;
        summary: string;
      }>("SELECT * FROM cmdb_ci_history_view WHERE ci_id = $1 ORDER BY version", [id]);
      const toRelationship = (r: (typeof relationships.rows)[number]) => ({
        sourceCiId: r.source_ci_id,
        sourceName: r.source_name,
        type: r.type,
        targetCiId: r.target_ci_id,
        targetName: r.target_name,
      });
      return {
        item: toCi(row),
        outgoing: relationships.rows.filter((r) => r.source_ci_id === id).map(toRelationship),
        incoming: relationships.rows.filter((r) => r.target_ci_id === id).map(toRelationship),
        history: history.rows.map((h) => ({
          version: Number(h.version),
          occurredAt: h.occurred_at,
          actor: h.actor,
          eventType: h.event_type,
          summary: h.summary,
        })),
      };
    },
  );
};

const ciImpact: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/cmdb/items/:id/impact",
    {
      schema: {
        tags: ["configuration"],
        summary: "Everything affected when this CI fails: transitive dependents with depth and path",
        params: { type: "object", properties: { id: { type: "string", maxLength: 200 } }, required: ["id"] },
        querystring: {
          type: "object",
          properties: { maxDepth: { type: "integer", minimum: 0, maximum: 1000, default: 0 } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: "object",
            properties: {
              root: ciSchema,
              impacted: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    ciId: { type: "string" },
                    name: { type: ["string", "null"] },
                    type: { type: ["string", "null"] },
                    owner: { type: ["string", "null"] },
                    depth: { type: "integer" },
                    path: { type: "array", items: { type: "string" } },
                    pathRelationships: { type: "array", items: { type: "string" } },
                  },
                },
              },
              impactedBusinessServices: { type: "array", items: { type: "string" } },
            },
          },
          404: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const { rows } = await pool.query<CiRow>("SELECT * FROM cmdb_ci_view WHERE ci_id = $1", [id]);
      const root = rows[0];
      if (!root) return notFound(reply, `configuration item ${id} not found`);
      const reached = await impactOf(pool, id, request.query.maxDepth);
      const names = await pool.query<{ ci_id: string; name: string; type: string; owner: string }>(
        "SELECT ci_id, name, type, owner FROM cmdb_ci_view WHERE ci_id = ANY($1)",
        [reached.map((r) => r.ciId)],
      );
      const byId = new Map(names.rows.map((r) => [r.ci_id, r]));
      const impacted = reached
        .map((r) => ({
          ciId: r.ciId,
          name: byId.get(r.ciId)?.name ?? null,
          type: byId.get(r.ciId)?.type ?? null,
          owner: byId.get(r.ciId)?.owner ?? null,
          depth: r.depth,
          path: r.path,
          pathRelationships: r.pathRelationships,
        }))
        .sort(
          (a, b) => a.depth - b.depth || (a.name ?? "").localeCompare(b.name ?? "") || a.ciId.localeCompare(b.ciId),
        );
      return {
        root: toCi(root),
        impacted,
        impactedBusinessServices: impacted.filter((i) => i.type === "BUSINESS_SERVICE").map((i) => i.ciId),
      };
    },
  );
};

/** CMDB browse, CI detail (relationships both ways, history) and the impact view. */
export const cmdbRoutes: RoutePlugin = async (app, options) => {
  for (const routes of [ciList, ciDetail, ciImpact]) await app.register(routes, options);
};
