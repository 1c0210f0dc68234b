import { badRequest, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { parseRange, toCalendarRelease, toChange, toCollision, toFreezeWindow } from "../changes/queries.js";
import { calendarConflicts } from "./conflicts.js";
import { calendarOf, changeCollisions, conflictInputs, toCalendarDeployment } from "./queries.js";
import { calendarQuery, calendarSchema } from "./schemas.js";

const description = [
  "Everything whose window overlaps the half-open range [from, to) (at most 366 days), from every topic.",
  "Changes: every state but REJECTED and CANCELLED, and CLOSED after a rejection (with `environment`: those naming",
  "it or naming none).",
  "Releases: ACTIVE ones with a planned window (start and end); an abandoned or closed release does not occupy",
  "the calendar; releases are not filtered by environment. Deployments: planned ones with a window, but cancelled",
  "ones. Freeze windows: those not lifted (with `environment`: scoped to all, to it, or to CIs only).",
  "Conflicts: CHANGE_CHANGE (booked, i.e. SCHEDULED or IMPLEMENTING, changes sharing CIs), CHANGE_FREEZE (a booked",
  "change inside a freeze covering its CIs or environments, any environment for a change naming none, that it",
  "did not override), DEPLOYMENT_FREEZE (a",
  "deployment inside a freeze covering its environment or targets that its start did not override; for deployments",
  "started before the gateway kept those, after rebuild-views), DEPLOYMENT_DEPLOYMENT (two deployments to one",
  "environment at once), CHANGE_DEPLOYMENT (a deployment touching a booked change's CIs it does not implement:",
  "not linked to its release, nor in its plan's linkedChangeIds nor, once started, in its changeRequestIds (those",
  "its start checked, from its begin those its release still listed; for deployments started before the gateway",
  "kept those, after rebuild-views). A deployment's",
  "targets are those its steps touch; a blue/green one's, both colours' groups (its switch moves traffic off the live",
  "one).",
].join(" ");

/** The calendar: release, change and deployment windows, freeze windows, and the conflicts among them. */
export const calendarRoutes: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/calendar",
    {
      schema: {
        tags: ["calendar"],
        summary: "Calendar for [from, to): releases, changes, deployments, freeze windows, conflicts",
        description,
        querystring: calendarQuery,
        response: { 200: calendarSchema, 400: problemSchema },
      },
    },
    async (request, reply) => {
      const range = parseRange(request.query.from, request.query.to);
      if (typeof range === "string") return badRequest(reply, range);
      const environment = request.query.environment;
      const rows = await calendarOf(pool, { ...range, environment });
      const inputs = conflictInputs(rows);
      const conflicts = calendarConflicts(inputs.changes, inputs.deployments, inputs.freezes, environment);
      const changePairs = conflicts
        .filter((c) => c.kind === "CHANGE_CHANGE")
        .map((c) => ({ a: c.items[0].id, b: c.items[1].id, ciIds: c.ciIds }));
      return {
        from: range.from,
        to: range.to,
        environment: environment ?? null,
        changes: rows.changes.map(toChange),
        releases: rows.releases.map(toCalendarRelease),
        deployments: rows.deployments.map(toCalendarDeployment),
        freezeWindows: rows.freezes.map(toFreezeWindow),
        collisions: changeCollisions(rows.changes, changePairs).map((p) => ({
          changes: [toCollision(p.a), toCollision(p.b)],
          ciIds: p.ciIds,
        })),
        conflicts,
      };
    },
  );
};
