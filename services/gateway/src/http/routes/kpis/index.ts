import { computeKpis, periodRange } from "../../../kpis/compute.js";
import { badRequest, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { parseDate } from "../changes/queries.js";
import { kpiFacts } from "./queries.js";
import { KPI_DEFINITIONS, kpiQuery, kpiSchema } from "./schemas.js";

/** The KPIs of one period: the four DORA metrics, on-time releases, approval lead time, SLA breaches. */
export const kpiRoutes: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/kpis",
    {
      schema: {
        tags: ["kpis"],
        summary: "KPIs per service, environment and period, each with the counts it came from",
        description: KPI_DEFINITIONS,
        querystring: kpiQuery,
        response: { 200: kpiSchema, 400: problemSchema },
      },
    },
    async (request, reply) => {
      const { service, environment, period } = request.query;
      const at = request.query.at === undefined ? new Date() : parseDate(request.query.at);
      if (!at) return badRequest(reply, "at must be a date-time in the years 0001 to 9999");
      const range = periodRange(period, at);
      const facts = await kpiFacts(pool, environment, range.from);
      const scope = { period, ...range, environment, production: facts.production, service };
      return {
        period,
        ...range,
        environment,
        production: facts.production,
        service: service ?? null,
        ...computeKpis(scope, facts.deployments, facts.releases),
      };
    },
  );
};
