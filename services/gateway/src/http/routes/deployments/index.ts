import { decodePageToken, encodePageToken, isIsoTimestamp, pageTokenScope } from "@rdm/runtime/process";
import { badRequest, equalityFilters, notFound, problemSchema, uuidSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { arr, obj } from "../../schema-parts.js";
import { deploymentStreamRoutes } from "./events.js";
import {
  deploymentsOfRelease,
  inventoryEntries,
  KNOWN_ENVIRONMENTS,
  type KnownEnvironmentRow,
  knownEnvironment,
  LISTED_DEPLOYMENTS,
  type ListedDeploymentRow,
  releaseKnown,
  toDeploymentDetail,
  toInventoryEntry,
  toKnownEnvironment,
  toListedDeployment,
  unknownEnvironment,
} from "./queries.js";
import {
  DEPLOYMENT_STATES,
  deploymentDetailSchema,
  deploymentSchema,
  environmentName,
  inventoryEntrySchema,
  knownEnvironmentSchema,
} from "./schemas.js";

const isDeploymentId = (id: string) => id.length > 0 && id.length <= 200;

const deploymentList: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/deployments",
    {
      schema: {
        tags: ["deployments"],
        summary: "Deployments, newest first, paged; filter by release, environment or state",
        description:
          "Every deployment from its plan on: e.g. state=AWAITING_APPROVAL lists those waiting for an approver, " +
          "state=SCHEDULED those queued for their window; paused=true those on hold.",
        querystring: {
          type: "object",
          properties: {
            pageSize: { type: "integer", minimum: 1, maximum: 200, default: 50 },
            pageToken: { type: "string", maxLength: 400 },
            releaseId: uuidSchema,
            environment: environmentName,
            state: { type: "string", enum: DEPLOYMENT_STATES },
            paused: { type: "boolean" },
          },
          additionalProperties: false,
        },
        response: {
          200: obj({ deployments: arr(deploymentSchema), nextPageToken: { type: ["string", "null"] } }),
          400: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { pageSize, pageToken, releaseId, environment, state, paused } = request.query;
      // Release ids are stored in lower case; a client may send a UUID in either.
      const filters = {
        "p.release_id": releaseId?.toLowerCase(),
        "p.environment": environment,
        "p.status": state,
        "COALESCE((p.plan->>'paused')::boolean, false)": paused,
      };
      const { where, args } = equalityFilters(filters);
      const scope = pageTokenScope("gateway.GET /v1/deployments", filters);
      if (pageToken !== undefined) {
        const cursor = decodePageToken(pageToken, scope, isIsoTimestamp, isDeploymentId);
        if (typeof cursor === "string") return badRequest(reply, `pageToken ${cursor}`);
        args.push(new Date(cursor[0]), cursor[1]);
        where.push(`(p.first_event_at, p.deployment_id) < ($${args.length - 1}::timestamptz, $${args.length})`);
      }
      args.push(pageSize + 1);
      const { rows } = await pool.query<ListedDeploymentRow>(
        `${LISTED_DEPLOYMENTS} ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY p.first_event_at DESC, p.deployment_id DESC LIMIT $${args.length}`,
        args,
      );
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        deployments: page.map(toListedDeployment),
        nextPageToken:
          rows.length > pageSize && last
            ? encodePageToken(scope, last.listed_at.toISOString(), last.plan.deploymentId)
            : null,
      };
    },
  );
};

const deploymentDetail: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/deployments/:id",
    {
      schema: {
        tags: ["deployments"],
        summary: "One deployment: state, plan and steps, approvals, artifacts, times, failure and rollback",
        params: { type: "object", properties: { id: uuidSchema }, required: ["id"] },
        response: { 200: deploymentDetailSchema, 400: problemSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      // Deployment ids are UUIDs, stored as the service makes them: lowercase.
      const { rows } = await pool.query<ListedDeploymentRow>(`${LISTED_DEPLOYMENTS} WHERE p.deployment_id = $1`, [
        request.params.id.toLowerCase(),
      ]);
      const row = rows[0];
      if (!row) return notFound(reply, `deployment ${request.params.id} not found`);
      return toDeploymentDetail(row);
    },
  );
};

const releaseDeployments: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/releases/:id/deployments",
    {
      schema: {
        tags: ["deployments"],
        summary: "The deployments of one release, newest first (empty when it was never deployed)",
        description: "404 when the release is unknown and no deployment names it.",
        params: { type: "object", properties: { id: uuidSchema }, required: ["id"] },
        response: { 200: obj({ deployments: arr(deploymentSchema) }), 400: problemSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const deployments = await deploymentsOfRelease(pool, id);
      // Deployments may be projected before their release (two topics): those known are listed.
      if (!deployments.length && !(await releaseKnown(pool, id))) return notFound(reply, `release ${id} not found`);
      return { deployments };
    },
  );
};

const environmentList: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/environments",
    {
      schema: {
        tags: ["deployments"],
        summary:
          "Environments in promotion order: each one's definition (production, protection, freeze, targets), " +
          "health from its newest outcome, number of inventory entries",
        description:
          "Every environment the deployment service defined, and any other that had a deployment outcome " +
          "(definition null).",
        response: {
          200: obj({
            environments: arr({
              ...knownEnvironmentSchema,
              properties: { ...knownEnvironmentSchema.properties, entries: { type: "integer" } },
            }),
          }),
        },
      },
    },
    async () => {
      const { rows } = await pool.query<KnownEnvironmentRow & { entries: string }>(
        `SELECT k.*, (SELECT count(*) FROM environment_inventory_view i WHERE i.environment = k.name) AS entries
         FROM (${KNOWN_ENVIRONMENTS}) k ORDER BY k.promotion_rank NULLS LAST, k.name`,
      );
      return { environments: rows.map((r) => ({ ...toKnownEnvironment(r), entries: Number(r.entries) })) };
    },
  );
};

const environmentInventory: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/environments/:environment/inventory",
    {
      schema: {
        tags: ["deployments"],
        summary:
          "What runs where in one environment: each artifact version per target, since when, by which deployment",
        description:
          "Built from the deployment outcomes in the environment's order (environment_sequence), whatever order they " +
          "arrived in; a rollback replaces the entries of the artifacts it restored on the targets it deployed to (of " +
          "every artifact, for one recorded before rollbacks named them) with what it restored.",
        params: { type: "object", properties: { environment: environmentName }, required: ["environment"] },
        querystring: {
          type: "object",
          properties: {
            targetCiId: { type: "string", maxLength: 200 },
            artifactName: { type: "string", maxLength: 200 },
          },
          additionalProperties: false,
        },
        response: {
          200: obj({ ...knownEnvironmentSchema.properties, entries: arr(inventoryEntrySchema) }),
          404: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { environment } = request.params;
      const known = await knownEnvironment(pool, environment);
      if (!known) return notFound(reply, unknownEnvironment(environment));
      const entries = await inventoryEntries(pool, { environment, ...request.query });
      return { ...toKnownEnvironment(known), entries: entries.map(toInventoryEntry) };
    },
  );
};

/** Deployments per release and environment, and each environment's inventory (from rdm.deployment.events.v1). */
export const deploymentRoutes: RoutePlugin = async (app, options) => {
  for (const routes of [
    deploymentStreamRoutes,
    deploymentList,
    deploymentDetail,
    releaseDeployments,
    environmentList,
    environmentInventory,
  ])
    await app.register(routes, options);
};
