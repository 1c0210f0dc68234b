import { decodePageToken, encodePageToken, isIsoTimestamp, pageTokenScope } from "@rdm/runtime/process";
import { badRequest, equalityFilters, notFound, problemSchema } from "../../problems.js";
import type { RoutePlugin } from "../../route-plugin.js";
import { environmentName } from "../deployments/schemas.js";
import { cmdbRoutes } from "./cmdb.js";
import { type ArtifactRow, type BaselineRow, toArtifact } from "./queries.js";
import { artifactSchema, baselineSchema } from "./schemas.js";

const artifactList: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/dml/artifacts",
    {
      schema: {
        tags: ["configuration"],
        summary: "Definitive Media Library: artifacts with their integrity status, newest first",
        querystring: {
          type: "object",
          properties: {
            name: { type: "string" },
            status: { type: "string", enum: ["ACTIVE", "QUARANTINED", "RETIRED"] },
            integrity: { type: "string", enum: ["UNVERIFIED", "VERIFIED", "MISMATCH"] },
            pageSize: { type: "integer", minimum: 1, maximum: 500, default: 100 },
            pageToken: { type: "string", maxLength: 500 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: "object",
            properties: {
              artifacts: { type: "array", items: artifactSchema },
              nextPageToken: { type: ["string", "null"] },
            },
          },
          400: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { name, status, integrity, pageSize, pageToken } = request.query;
      const { where, args } = equalityFilters({ name, status, integrity });
      const scope = pageTokenScope("gateway.GET /v1/dml/artifacts", request.query);
      if (pageToken !== undefined) {
        const cursor = decodePageToken(pageToken, scope, isIsoTimestamp, () => true);
        if (typeof cursor === "string") return badRequest(reply, `pageToken ${cursor}`);
        args.push(new Date(cursor[0]), cursor[1]);
        where.push(`(registered_at, artifact_id) < ($${args.length - 1}::timestamptz, $${args.length})`);
      }
      args.push(pageSize + 1);
      const { rows } = await pool.query<ArtifactRow>(
        `SELECT * FROM dml_artifact_view ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY registered_at DESC, artifact_id DESC LIMIT $${args.length}`,
        args,
      );
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        artifacts: page.map(toArtifact),
        nextPageToken:
          rows.length > pageSize && last
            ? encodePageToken(scope, last.registered_at.toISOString(), last.artifact_id)
            : null,
      };
    },
  );
};

const artifactDetail: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/dml/artifacts/:id",
    {
      schema: {
        tags: ["configuration"],
        summary: "One DML artifact",
        params: { type: "object", properties: { id: { type: "string", maxLength: 200 } }, required: ["id"] },
        response: { 200: artifactSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      const { rows } = await pool.query<ArtifactRow>("SELECT * FROM dml_artifact_view WHERE artifact_id = $1", [
        request.params.id,
      ]);
      const row = rows[0];
      if (!row) return notFound(reply, `artifact ${request.params.id} not found`);
      return toArtifact(row);
    },
  );
};

const baselineList: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/baselines",
    {
      schema: {
        tags: ["configuration"],
        summary: "Environments with a baseline: health, last deployment and last known good",
        response: {
          200: {
            type: "object",
            properties: {
              environments: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    environment: { type: "string" },
                    health: { type: "string" },
                    lastDeploymentId: { type: "string" },
                    lastKnownGoodDeploymentId: { type: ["string", "null"] },
                    entries: { type: "integer" },
                    updatedAt: { type: "string", format: "date-time" },
                  },
                },
              },
            },
          },
        },
      },
    },
    async () => {
      const { rows } = await pool.query<BaselineRow & { entries: string }>(
        `SELECT b.*, (SELECT count(*) FROM baseline_entry_view e WHERE e.environment = b.environment) AS entries
         FROM baseline_view b ORDER BY environment`,
      );
      return {
        environments: rows.map((r) => ({
          environment: r.environment,
          health: r.health,
          lastDeploymentId: r.last_deployment_id,
          lastKnownGoodDeploymentId: r.last_known_good_deployment_id,
          entries: Number(r.entries),
          updatedAt: r.updated_at,
        })),
      };
    },
  );
};

const baselineDetail: RoutePlugin = async (app, { pool }) => {
  app.get(
    "/v1/baselines/:environment",
    {
      schema: {
        tags: ["configuration"],
        summary: "What runs where in one environment, and the last known good state to back out to",
        params: {
          type: "object",
          properties: { environment: environmentName },
          required: ["environment"],
        },
        response: { 200: baselineSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      const environment = request.params.environment;
      const { rows } = await pool.query<BaselineRow>("SELECT * FROM baseline_view WHERE environment = $1", [
        environment,
      ]);
      const row = rows[0];
      if (!row) return notFound(reply, `no baseline for environment ${environment}`);
      const entries = await pool.query<{
        ci_id: string;
        ci_name: string | null;
        artifact_name: string;
        artifact_version: string;
        artifact_id: string;
        deployment_id: string;
        deployed_at: Date;
      }>(
        `SELECT e.*, c.name AS ci_name FROM baseline_entry_view e LEFT JOIN cmdb_ci_view c ON c.ci_id = lower(e.ci_id)
         WHERE e.environment = $1 ORDER BY e.ci_id, e.artifact_name`,
        [environment],
      );
      return {
        environment: row.environment,
        health: row.health,
        lastDeploymentId: row.last_deployment_id,
        entries: entries.rows.map((e) => ({
          ciId: e.ci_id,
          ciName: e.ci_name,
          artifactName: e.artifact_name,
          artifactVersion: e.artifact_version,
          artifactId: e.artifact_id,
          deploymentId: e.deployment_id,
          deployedAt: e.deployed_at,
        })),
        lastKnownGood: row.last_known_good,
        lastKnownGoodDeploymentId: row.last_known_good_deployment_id,
        lastKnownGoodAt: row.last_known_good_at,
        version: Number(row.version),
        updatedAt: row.updated_at,
      };
    },
  );
};

/** CMDB browse, CI detail, impact view, the DML with integrity status, and "what runs where". */
export const configurationRoutes: RoutePlugin = async (app, options) => {
  for (const routes of [cmdbRoutes, artifactList, artifactDetail, baselineList, baselineDetail])
    await app.register(routes, options);
};
