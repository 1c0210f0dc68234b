import { ChangeStateSchema, ChangeTypeSchema } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { decodePageToken, encodePageToken, isIsoTimestamp, isUuid, pageTokenScope } from "@rdm/runtime/process";
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

/** What a list of changes may be filtered by. */
interface ChangeFilters {
  state?: string;
  type?: string;
  ciId?: string;
  linkedReleaseId?: string;
  from?: string;
  to?: string;
  q?: string;
}

/**
 * The conditions of a list of changes (their values through `arg`) and the scope of its page
 * tokens, or why the filters are refused. Tokens are bound to the filters as the query reads
 * them: "state=a,B" pages on with "state=b,A".
 */
function changeFilters(
  { state, type, ciId, linkedReleaseId, from, to, q }: ChangeFilters,
  arg: (value: unknown) => string,
): { where: string[]; scope: string } | { refused: string } {
  const where: string[] = [];
  const lists: Record<string, string[]> = {};
  for (const [column, schema, value] of [
    ["state", ChangeStateSchema, state],
    ["type", ChangeTypeSchema, type],
  ] as const) {
    if (!value) continue;
    const parsed = parseEnumList(schema, value);
    if ("unknown" in parsed) {
      return { refused: `${column}: "${parsed.unknown}" is none of ${enumNames(schema).join(", ")}` };
    }
    where.push(`${column} = ANY(${arg(parsed.names)})`);
    lists[column] = parsed.names;
  }
  if (ciId) where.push(`${arg(ciId)} = ANY(affected_ci_ids)`);
  if (linkedReleaseId) where.push(`linked_release_id = ${arg(linkedReleaseId.toLowerCase())}`);
  const start = from === undefined ? undefined : parseDate(from);
  const end = to === undefined ? undefined : parseDate(to);
  if (from !== undefined && !start) return { refused: "from must be a date-time in the years 0001 to 9999" };
  if (to !== undefined && !end) return { refused: "to must be a date-time in the years 0001 to 9999" };
  // As on the calendar: an empty or reversed window is a mistake, not a filter matching nothing.
  if (start && end && end <= start) return { refused: "to must be after from" };
  if (start) where.push(`window_end > ${arg(start)}::timestamptz`);
  if (end) where.push(`window_start < ${arg(end)}::timestamptz`);
  if (q) {
    const pattern = arg(`%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`(title ILIKE ${pattern} OR key ILIKE ${pattern})`);
  }
  const scope = pageTokenScope("gateway.GET /v1/changes", {
    ...lists,
    ciId: ciId || undefined,
    linkedReleaseId: linkedReleaseId?.toLowerCase(),
    from: start,
    to: end,
    q: q || undefined,
  });
  return { where, scope };
}

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
      const { pageSize, pageToken, ...query } = request.query;
      const args: unknown[] = [];
      const arg = (value: unknown) => {
        args.push(value);
        return `$${args.length}`;
      };
      const filters = changeFilters(query, arg);
      if ("refused" in filters) return badRequest(reply, filters.refused);
      const { where, scope } = filters;
      if (pageToken !== undefined) {
        const cursor = decodePageToken(pageToken, scope, isIsoTimestamp, isUuid);
        if (typeof cursor === "string") return badRequest(reply, `pageToken ${cursor}`);
        where.push(
          `(raised_at, change_request_id) < (${arg(new Date(cursor[0]))}::timestamptz, ${arg(cursor[1])}::uuid)`,
        );
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
          rows.length > pageSize && last
            ? encodePageToken(scope, last.raised_at.toISOString(), last.change_request_id)
            : null,
      };
    },
  );
};

/** The change views: changes (list and detail, with approvals and collisions); the calendar is in routes/calendar. */
export const changeRoutes: RoutePlugin = async (app, options) => {
  for (const routes of [changeDetail, changeList]) await app.register(routes, options);
};
