import { aboutService, computeKpis, periodRange, shownEnd } from "../../../kpis/compute.js";
import { badRequest, notFound, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { parseDate } from "../changes/queries.js";
import { knownEnvironment, unknownEnvironment } from "../deployments/queries.js";
import { knownService, kpiFacts } from "./queries.js";
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
        response: { 200: kpiSchema, 400: problemSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      const { service, period } = request.query;
      // Named, an environment the gateway does not know is refused (a typo reads as no deployments
      // otherwise); production, the default, is answered on an empty system too.
      const environment = request.query.environment ?? "production";
      const known = await knownEnvironment(pool, environment);
      if (!known && request.query.environment !== undefined) return notFound(reply, unknownEnvironment(environment));
      const production = known?.production ?? true;
      const at = request.query.at === undefined ? new Date() : parseDate(request.query.at);
      if (!at) return badRequest(reply, "at must be a date-time in the years 0001 to 9999");
      const range = periodRange(period, at);
      const facts = await kpiFacts(pool, environment, range.from);
      // Likewise a service no fact names and the gateway never heard of (the facts are read first:
      // a service they name needs no more look-ups).
      const named = (f: { services: string[] }) => service !== undefined && aboutService(f, service);
      if (
        service !== undefined &&
        !facts.deployments.some(named) &&
        !facts.releases.some(named) &&
        !(await knownService(pool, service))
      )
        return notFound(reply, `configuration item ${service} is neither in the CMDB nor deployed nor packaged`);
      const scope = { period, ...range, environment, production, service };
      return {
        period,
        from: range.from,
        to: shownEnd(range.to),
        environment,
        production,
        service: service ?? null,
        ...computeKpis(scope, facts.deployments, facts.releases),
      };
    },
  );
};
