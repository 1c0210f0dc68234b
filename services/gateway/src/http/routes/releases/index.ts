import { decodePageToken, encodePageToken, isIsoTimestamp, isUuid, pageTokenScope } from "@rdm/runtime/process";
import type { FastifyReply } from "fastify";
import { RELEASE_HISTORY_CHANNEL } from "../../../projections/releases/projection.js";
import { badRequest, equalityFilters, notFound, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { arr, obj } from "../../schema-parts.js";
import { badLastEventId, resumePoint, serveEventStream } from "../../sse.js";
import { deploymentsOfRelease } from "../deployments/queries.js";
import { deploymentSchema } from "../deployments/schemas.js";
import {
  changeStates,
  findRelease,
  historyAfter,
  historyOf,
  newestHistorySeq,
  type ReleaseRow,
  releaseRows,
  toHistory,
  toRelease,
} from "./queries.js";
import { historySchema, releaseEventsQuery, releaseListQuery, releaseParams, releaseSchema } from "./schemas.js";

const releaseNotFound = (reply: FastifyReply, id: string) => notFound(reply, `release ${id} not found`);

const releaseOverview: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/releases/:id",
    {
      schema: {
        tags: ["releases"],
        summary: "One release: phase, gate conditions, approvals, tasks, package, deadlines, deployments",
        params: releaseParams,
        response: {
          200: { ...releaseSchema, properties: { ...releaseSchema.properties, deployments: arr(deploymentSchema) } },
          404: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const row = await findRelease(pool, request.params.id);
      if (!row) return releaseNotFound(reply, request.params.id);
      const deployments = await deploymentsOfRelease(pool, row.release_id);
      return { ...toRelease(row, await changeStates(pool, [row])), deployments };
    },
  );
};

const releaseHistory: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/releases/:id/history",
    {
      schema: {
        tags: ["releases"],
        summary: "Audit trail of one release: every event with actor, time and reason",
        params: releaseParams,
        response: { 200: obj({ entries: arr(historySchema) }), 404: problemSchema },
      },
    },
    async (request, reply) => {
      const rows = await historyOf(pool, request.params.id);
      if (!rows.length) return releaseNotFound(reply, request.params.id);
      return { entries: rows.map(toHistory) };
    },
  );
};

const releaseEventStream: RoutePlugin = async (app, { pool, streams }) => {
  app.get(
    "/v1/releases/events",
    {
      schema: {
        tags: ["releases"],
        summary: "Server-Sent Events: release events as they are projected (id = seq; resume with Last-Event-ID)",
        querystring: releaseEventsQuery,
      },
    },
    async (request, reply) => {
      const { releaseId } = request.query;
      const after = await resumePoint(request, request.query.after, () => newestHistorySeq(pool));
      if (after === undefined) return badLastEventId(reply);
      serveEventStream(request, reply, {
        streams,
        channel: RELEASE_HISTORY_CHANNEL,
        after,
        name: "release event stream",
        read: (from, limit) => historyAfter(pool, from, limit, releaseId),
      });
    },
  );
};

const releaseList: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/releases",
    {
      schema: {
        tags: ["releases"],
        summary: "Releases, newest first, paged",
        querystring: releaseListQuery,
        response: {
          200: obj({ releases: arr(releaseSchema), nextPageToken: { type: ["string", "null"] } }),
          400: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { pageSize, pageToken, phase, type, owner, status, overdue, overdueTasks } = request.query;
      const { where, args } = equalityFilters({ phase, type, owner, status });
      const scope = pageTokenScope("gateway.GET /v1/releases", request.query);
      if (pageToken !== undefined) {
        const cursor = decodePageToken(pageToken, scope, isIsoTimestamp, isUuid);
        if (typeof cursor === "string") return badRequest(reply, `pageToken ${cursor}`);
        args.push(new Date(cursor[0]), cursor[1]);
        where.push(`(registered_at, release_id) < ($${args.length - 1}::timestamptz, $${args.length}::uuid)`);
      }
      if (overdue !== undefined)
        where.push(overdue ? "phase_due_at < now()" : "(phase_due_at IS NULL OR phase_due_at >= now())");
      // The folded snapshot (protobuf JSON) leaves out false flags and empty lists: a task with
      // "overdue": true is one, and a release without tasks (or snapshot) has none. Only an
      // active release's count, as its overview lists them: an abandoned one's can never be done.
      if (overdueTasks !== undefined)
        where.push(
          `${overdueTasks ? "" : "NOT "}(status = 'ACTIVE' AND COALESCE(snapshot->'tasks' @> '[{"overdue": true}]', false))`,
        );
      args.push(pageSize + 1);
      const order = "ORDER BY registered_at DESC, release_id DESC";
      const { rows } = await pool.query<ReleaseRow>(
        releaseRows(
          `SELECT * FROM release_view ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ${order} LIMIT $${args.length}`,
          order,
        ),
        args,
      );
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      const changes = await changeStates(pool, page);
      return {
        releases: page.map((row) => toRelease(row, changes)),
        nextPageToken:
          rows.length > pageSize && last
            ? encodePageToken(scope, last.registered_at.toISOString(), last.release_id)
            : null,
      };
    },
  );
};

/** Release overviews (phase, gate, approvals, tasks, package, deadlines), audit trails and their event stream. */
export const releaseRoutes: RoutePlugin = async (app, options) => {
  for (const routes of [releaseOverview, releaseHistory, releaseEventStream, releaseList])
    await app.register(routes, options);
};
