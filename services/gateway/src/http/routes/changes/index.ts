import { ChangeStateSchema, ChangeTypeSchema } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { decodePageToken, encodePageToken, isIsoTimestamp, isUuid } from "@rdm/runtime/process";
import { enumNames, parseEnumList } from "../../../projections/enums.js";
import { badRequest, notFound, problemSchema, uuidSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { BOOKED, type ChangeRow, type CollisionRow, parseDate, toChange, toCollision } from "./queries.js";
import { changeDetailSchema, changeListQuery, changeSchema } from "./schemas.js";

const changeDetail: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/changes/:id",
    {
      schema: {
        tags: ["changes"],
        summary: "One change request with its approvals, tasks and current collisions",
        params: { type: "object", properties: { id: uuidSchema }, required: ["id"] },
        response: { 200: changeDetailSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      const { rows } = await pool.query<ChangeRow>("SELECT * FROM change_view WHERE change_request_id = $1", [
        request.params.id,
      ]);
      const row = rows[0];
      if (!row) {
        return notFound(reply, `change request ${request.params.id} not found`);
      }
      const collisions = await pool.query<CollisionRow>(
        `SELECT o.change_request_id, o.key, o.state, o.window_start, o.window_end,
                ARRAY(SELECT unnest(o.affected_ci_ids) INTERSECT SELECT unnest(c.affected_ci_ids) ORDER BY 1) AS ci_ids
         FROM change_view c JOIN change_view o ON o.change_request_id <> c.change_request_id
         WHERE c.change_request_id = $1 AND o.state = ANY($2)
           AND o.window_start < c.window_end AND o.window_end > c.window_start
           AND o.affected_ci_ids && c.affected_ci_ids
         ORDER BY o.key, o.change_request_id`,
        [request.params.id, BOOKED],
      );
      return { ...toChange(row), collisions: collisions.rows.map(toCollision) };
    },
  );
};

const changeList: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/changes",
    {
      schema: {
        tags: ["changes"],
        summary: "Change requests, newest first, paged; filter by state, type, CI, linked release, window, text",
        querystring: changeListQuery,
        response: {
          200: {
            type: "object",
            properties: {
              changes: { type: "array", items: changeSchema },
              nextPageToken: { type: ["string", "null"] },
            },
          },
          400: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { pageSize, pageToken, state, type, ciId, linkedReleaseId, from, to, q } = request.query;
      const where: string[] = [];
      const args: unknown[] = [];
      const arg = (value: unknown) => {
        args.push(value);
        return `$${args.length}`;
      };
      if (pageToken !== undefined) {
        const cursor = decodePageToken(pageToken, isIsoTimestamp, isUuid);
        if (!cursor) return badRequest(reply, "pageToken is not valid");
        where.push(
          `(raised_at, change_request_id) < (${arg(new Date(cursor[0]))}::timestamptz, ${arg(cursor[1])}::uuid)`,
        );
      }
      for (const [column, schema, value] of [
        ["state", ChangeStateSchema, state],
        ["type", ChangeTypeSchema, type],
      ] as const) {
        if (!value) continue;
        const parsed = parseEnumList(schema, value);
        if ("unknown" in parsed) {
          return badRequest(reply, `${column}: "${parsed.unknown}" is none of ${enumNames(schema).join(", ")}`);
        }
        where.push(`${column} = ANY(${arg(parsed.names)})`);
      }
      if (ciId) where.push(`${arg(ciId)} = ANY(affected_ci_ids)`);
      if (linkedReleaseId) where.push(`linked_release_id = ${arg(linkedReleaseId.toLowerCase())}`);
      const start = from === undefined ? undefined : parseDate(from);
      const end = to === undefined ? undefined : parseDate(to);
      if (from !== undefined && !start) return badRequest(reply, "from must be a date-time");
      if (to !== undefined && !end) return badRequest(reply, "to must be a date-time");
      // As on the calendar: an empty or reversed window is a mistake, not a filter matching nothing.
      if (start && end && end <= start) return badRequest(reply, "to must be after from");
      if (start) where.push(`window_end > ${arg(start)}::timestamptz`);
      if (end) where.push(`window_start < ${arg(end)}::timestamptz`);
      if (q) {
        const pattern = arg(`%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
        where.push(`(title ILIKE ${pattern} OR key ILIKE ${pattern})`);
      }
      const { rows } = await pool.query<ChangeRow>(
        `SELECT * FROM change_view ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY raised_at DESC, change_request_id DESC LIMIT ${arg(pageSize + 1)}`,
        args,
      );
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      return {
        changes: page.map(toChange),
        nextPageToken:
          rows.length > pageSize && last ? encodePageToken(last.raised_at.toISOString(), last.change_request_id) : null,
      };
    },
  );
};

/** The change views: changes (list and detail, with approvals and collisions); the calendar is in routes/calendar. */
export const changeRoutes: RoutePlugin = async (app, options) => {
  for (const routes of [changeDetail, changeList]) await app.register(routes, options);
};
