import { DEPLOYMENT_FEED_CHANNEL } from "../../../projections/deployments/projection.js";
import { notFound, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { badLastEventId, resumePoint, serveEventStream } from "../../sse.js";
import { feedAfter, knownEnvironment, newestFeedSeq, unknownEnvironment } from "./queries.js";
import { deploymentEventsQuery, environmentName, inventoryEventsQuery } from "./schemas.js";

const streamDescription =
  "Each event is one projected deployment event, from its plan on (id = seq; data: seq, eventType, deploymentId, " +
  "releaseId and environment as its plan names them, environmentSequence (0 but for a begin, an outcome or a rollback given up), " +
  "occurredAt). Resume with Last-Event-ID, or start after `after`.";

const deploymentEventStream: RoutePlugin = async (app, { pool, streams }) => {
  app.get(
    "/v1/deployments/events",
    {
      schema: {
        tags: ["deployments"],
        summary: "Server-Sent Events: every deployment event as it is projected, by release or environment",
        description: streamDescription,
        querystring: deploymentEventsQuery,
        response: { 400: problemSchema },
      },
    },
    async (request, reply) => {
      const { releaseId, environment } = request.query;
      const after = await resumePoint(request, request.query.after, () => newestFeedSeq(pool));
      if (after === undefined) return badLastEventId(reply);
      serveEventStream(request, reply, {
        streams,
        channel: DEPLOYMENT_FEED_CHANNEL,
        after,
        name: "deployment event stream",
        read: (from, limit) => feedAfter(pool, from, limit, { releaseId, environment }),
      });
    },
  );
};

const inventoryEventStream: RoutePlugin = async (app, { pool, streams }) => {
  app.get(
    "/v1/environments/:environment/inventory/events",
    {
      schema: {
        tags: ["deployments"],
        summary: "Server-Sent Events: the deployment outcomes that changed this environment's inventory",
        description: `${streamDescription} Read /v1/environments/{environment}/inventory for the inventory after it.`,
        params: { type: "object", properties: { environment: environmentName }, required: ["environment"] },
        querystring: inventoryEventsQuery,
        response: { 400: problemSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      const { environment } = request.params;
      // As its inventory: an environment neither defined nor deployed to is none (a typo would wait forever).
      if (!(await knownEnvironment(pool, environment))) return notFound(reply, unknownEnvironment(environment));
      const after = await resumePoint(request, request.query.after, () => newestFeedSeq(pool));
      if (after === undefined) return badLastEventId(reply);
      serveEventStream(request, reply, {
        streams,
        channel: DEPLOYMENT_FEED_CHANNEL,
        after,
        name: "inventory event stream",
        read: (from, limit) => feedAfter(pool, from, limit, { environment, inventoryChanged: true }),
      });
    },
  );
};

/** The deployment and inventory views as Server-Sent Events, resumable like the release stream. */
export const deploymentStreamRoutes: RoutePlugin = async (app, options) => {
  for (const routes of [deploymentEventStream, inventoryEventStream]) await app.register(routes, options);
};
