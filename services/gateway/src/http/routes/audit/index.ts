import { AUDIT_CHANNEL } from "../../../projections/audit/projection.js";
import { badRequest, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { badLastEventId, resumePoint, serveEventStream } from "../../sse.js";
import { parseDate } from "../changes/queries.js";
import { type AuditFilters, asStreamEntries, auditAfter, newestAuditSeq } from "./queries.js";
import { auditPageSchema, auditQuery, auditStreamQuery, viewStreamQuery } from "./schemas.js";

const auditTrail: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/audit",
    {
      schema: {
        tags: ["audit"],
        summary: "Audit trail: every event of every service with actor, time, correlation and causation ids",
        description:
          "In projection order (seq), filterable; paged by keyset: pass the page's nextAfter as `after`. " +
          "`from`/`to` filter on the time the event happened.",
        querystring: auditQuery,
        response: { 200: auditPageSchema, 400: problemSchema },
      },
    },
    async (request, reply) => {
      const { after, limit, from, to, ...filters } = request.query;
      const range: AuditFilters = {};
      if (from !== undefined) {
        range.from = parseDate(from);
        if (!range.from) return badRequest(reply, "from must be a date-time in the years 0001 to 9999");
      }
      if (to !== undefined) {
        range.to = parseDate(to);
        if (!range.to) return badRequest(reply, "to must be a date-time in the years 0001 to 9999");
      }
      const rows = await auditAfter(pool, after ?? 0, limit + 1, { ...filters, ...range });
      const entries = rows.slice(0, limit);
      return { entries, nextAfter: rows.length > limit ? (entries[entries.length - 1]?.seq ?? null) : null };
    },
  );
};

const streamDescription =
  "id = the audit seq; resume with Last-Event-ID (or start after `after`; without either, now).";

const auditStreams: RoutePlugin = async (app, { pool, streams }) => {
  app.get(
    "/v1/audit/events",
    {
      schema: {
        tags: ["audit"],
        summary: "Server-Sent Events: the audit trail as events are projected (event: the event type)",
        description: streamDescription,
        querystring: auditStreamQuery,
        response: { 400: problemSchema },
      },
    },
    async (request, reply) => {
      const { after: start, ...filters } = request.query;
      const after = await resumePoint(request, start, () => newestAuditSeq(pool));
      if (after === undefined) return badLastEventId(reply);
      serveEventStream(request, reply, {
        streams,
        channel: AUDIT_CHANNEL,
        after,
        name: "audit stream",
        read: async (from, limit) => asStreamEntries(await auditAfter(pool, from, limit, filters), (e) => e.eventType),
      });
    },
  );
  app.get(
    "/v1/views/events",
    {
      schema: {
        tags: ["audit"],
        summary: "Server-Sent Events: changes of the combined views (overview, calendar, inventory, kpis, audit)",
        description:
          `${streamDescription} One SSE event per projected event, named after the first view it changed ` +
          "(with `view`: that view); data names every view it changed and its release, change, deployment " +
          "and environments, so a dashboard refetches only what changed. With `release`, also the configuration " +
          "events about its package's artifacts and the CIs they map to; with `environment`, also those about its " +
          "targets (their status is in its inventory).",
        querystring: viewStreamQuery,
        response: { 400: problemSchema },
      },
    },
    async (request, reply) => {
      const { after: start, view, release, environment } = request.query;
      const after = await resumePoint(request, start, () => newestAuditSeq(pool));
      if (after === undefined) return badLastEventId(reply);
      serveEventStream(request, reply, {
        streams,
        channel: AUDIT_CHANNEL,
        after,
        name: "view stream",
        read: async (from, limit) =>
          asStreamEntries(
            await auditAfter(pool, from, limit, { view, release, environment, related: true }),
            (e) => view ?? e.views[0] ?? "audit",
          ),
      });
    },
  );
};

/** The audit trail of every service's events, paged, and the live streams of the combined views. */
export const auditRoutes: RoutePlugin = async (app, options) => {
  for (const routes of [auditTrail, auditStreams]) await app.register(routes, options);
};
