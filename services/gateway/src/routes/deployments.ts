import { decodePageToken, encodePageToken, isIsoTimestamp } from "@rdm/runtime";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { badRequest, equalityFilters, notFound, problemSchema, uuidSchema } from "./http.js";

const str = { type: "string" } as const;
const date = { type: "string", format: "date-time" } as const;
const nullableDate = { type: ["string", "null"], format: "date-time" } as const;
const obj = (properties: Record<string, unknown>, example?: unknown) =>
  ({ type: "object", properties, ...(example ? { examples: [example] } : {}) }) as const;
const arr = (items: unknown) => ({ type: "array", items }) as const;

const DEPLOYMENT_STATES = ["IN_PROGRESS", "SUCCEEDED", "FAILED", "ROLLED_BACK"];
const OUTCOMES = ["SUCCEEDED", "FAILED", "ROLLED_BACK"];
const environmentName = { type: "string", minLength: 1, maxLength: 100, examples: ["production"] } as const;

const artifactSchema = obj({
  artifactId: { ...str, description: "DML artifact id, when the deployment service knew it" },
  name: str,
  version: str,
  targetCiIds: { ...arr(str), description: "configuration items it was deployed to" },
});

const deploymentExample = {
  deploymentId: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
  releaseId: "0b8e2f5c-3d4a-4c1e-8f7a-2a9c6d5e4f30",
  environment: "production",
  state: "ROLLED_BACK",
  strategy: "CANARY",
  artifacts: [{ artifactId: "", name: "payments-api", version: "4.2.0", targetCiIds: ["host-17", "host-18"] }],
  restoredArtifacts: [{ artifactId: "", name: "payments-api", version: "4.1.3", targetCiIds: ["host-17", "host-18"] }],
  failureReason: "error rate above 2% on the canary",
  failedTargetCiIds: ["host-17"],
  rollbackReason: "automatic back-out after failed verification",
  startedAt: "2026-12-01T09:00:00.000Z",
  finishedAt: "2026-12-01T09:12:30.000Z",
  rolledBackAt: "2026-12-01T09:14:02.000Z",
  updatedAt: "2026-12-01T09:14:02.000Z",
};

export const deploymentSchema = obj(
  {
    deploymentId: str,
    releaseId: str,
    environment: str,
    state: { type: "string", enum: DEPLOYMENT_STATES, description: "from its newest event in environment order" },
    strategy: { ...str, description: "ALL_AT_ONCE, ROLLING, CANARY, BLUE_GREEN or PILOT; empty when never started" },
    artifacts: {
      ...arr(artifactSchema),
      description: "what the deployment deployed (or, before its outcome, planned)",
    },
    restoredArtifacts: {
      type: ["array", "null"],
      items: artifactSchema,
      description: "after a rollback: the whole baseline the environment was restored to",
    },
    failureReason: str,
    failedTargetCiIds: arr(str),
    rollbackReason: str,
    startedAt: nullableDate,
    finishedAt: { ...nullableDate, description: "when it succeeded or failed" },
    rolledBackAt: nullableDate,
    updatedAt: date,
  },
  deploymentExample,
);

const inventoryEntrySchema = obj(
  {
    targetCiId: str,
    targetName: { type: ["string", "null"], description: "the CI's name in the gateway's CMDB view, when known" },
    artifactName: str,
    artifactVersion: str,
    artifactId: str,
    since: { ...date, description: "since when this version runs on the target" },
    deploymentId: { ...str, description: "the deployment whose outcome put this version there" },
    releaseId: str,
    via: { type: "string", enum: OUTCOMES, description: "deployed, left by a failed deployment, or restored" },
  },
  {
    targetCiId: "host-17",
    targetName: "payments-host-17",
    artifactName: "payments-api",
    artifactVersion: "4.1.3",
    artifactId: "",
    since: "2026-12-01T09:14:02.000Z",
    deploymentId: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
    releaseId: "0b8e2f5c-3d4a-4c1e-8f7a-2a9c6d5e4f30",
    via: "ROLLED_BACK",
  },
);

const environmentSchema = obj(
  {
    environment: str,
    health: { type: "string", enum: ["HEALTHY", "DEGRADED"], description: "DEGRADED: the newest outcome is a failure" },
    lastDeploymentId: str,
    lastReleaseId: str,
    lastOutcome: { type: "string", enum: OUTCOMES },
    lastEnvironmentSequence: { type: "integer", description: "0 when the outcome carried no sequence" },
    updatedAt: date,
  },
  {
    environment: "production",
    health: "HEALTHY",
    lastDeploymentId: "5d1f0c0e-8f0a-4a8e-9a51-0c7d2f3b9e10",
    lastReleaseId: "0b8e2f5c-3d4a-4c1e-8f7a-2a9c6d5e4f30",
    lastOutcome: "ROLLED_BACK",
    lastEnvironmentSequence: 42,
    updatedAt: "2026-12-01T09:14:02.000Z",
  },
);

interface DeploymentRow {
  deployment_id: string;
  release_id: string;
  environment: string;
  state: string;
  strategy: string;
  artifacts: unknown[];
  restored_artifacts: unknown[] | null;
  failure_reason: string;
  failed_target_ci_ids: string[];
  rollback_reason: string;
  first_event_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  updated_at: Date;
}

const toDeployment = (r: DeploymentRow) => ({
  deploymentId: r.deployment_id,
  releaseId: r.release_id,
  environment: r.environment,
  state: r.state,
  strategy: r.strategy,
  artifacts: r.artifacts,
  restoredArtifacts: r.restored_artifacts,
  failureReason: r.failure_reason,
  failedTargetCiIds: r.failed_target_ci_ids,
  rollbackReason: r.rollback_reason,
  startedAt: r.started_at,
  finishedAt: r.finished_at,
  rolledBackAt: r.rolled_back_at,
  updatedAt: r.updated_at,
});

/** The deployments of one release, newest first (the release overview shows them per environment). */
export async function deploymentsOfRelease(pool: pg.Pool, releaseId: string) {
  const { rows } = await pool.query<DeploymentRow>(
    "SELECT * FROM deployment_view WHERE release_id = $1 ORDER BY first_event_at DESC, deployment_id DESC",
    [releaseId],
  );
  return rows.map(toDeployment);
}

const isDeploymentId = (id: string) => id.length > 0 && id.length <= 200;

/** Deployments per release and environment, and each environment's inventory (from rdm.deployment.events.v1). */
export function deploymentRoutes(app: FastifyInstance, pool: pg.Pool) {
  app.get<{
    Querystring: { pageSize: number; pageToken?: string; releaseId?: string; environment?: string; state?: string };
  }>(
    "/v1/deployments",
    {
      schema: {
        tags: ["deployments"],
        summary: "Deployments, newest first, paged; filter by release, environment or state",
        querystring: {
          type: "object",
          properties: {
            pageSize: { type: "integer", minimum: 1, maximum: 200, default: 50 },
            pageToken: { type: "string", maxLength: 400 },
            releaseId: { type: "string", maxLength: 200 },
            environment: environmentName,
            state: { type: "string", enum: DEPLOYMENT_STATES },
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
      const { pageSize, pageToken, releaseId, environment, state } = request.query;
      const { where, args } = equalityFilters({ release_id: releaseId, environment, state });
      if (pageToken !== undefined) {
        const cursor = decodePageToken(pageToken, isIsoTimestamp, isDeploymentId);
        if (!cursor) return badRequest(reply, "pageToken is not valid");
        args.push(new Date(cursor[0]), cursor[1]);
        where.push(`(first_event_at, deployment_id) < ($${args.length - 1}::timestamptz, $${args.length})`);
      }
      args.push(pageSize + 1);
      const { rows } = await pool.query<DeploymentRow>(
        `SELECT * FROM deployment_view ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY first_event_at DESC, deployment_id DESC LIMIT $${args.length}`,
        args,
      );
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        deployments: page.map(toDeployment),
        nextPageToken:
          rows.length > pageSize && last
            ? encodePageToken(last.first_event_at.toISOString(), last.deployment_id)
            : null,
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/deployments/:id",
    {
      schema: {
        tags: ["deployments"],
        summary: "One deployment: state, strategy, artifacts, times, failure and rollback",
        params: { type: "object", properties: { id: { type: "string", maxLength: 200 } }, required: ["id"] },
        response: { 200: deploymentSchema, 404: problemSchema },
      },
    },
    async (request, reply) => {
      const { rows } = await pool.query<DeploymentRow>("SELECT * FROM deployment_view WHERE deployment_id = $1", [
        request.params.id,
      ]);
      const row = rows[0];
      if (!row) return notFound(reply, `deployment ${request.params.id} not found`);
      return toDeployment(row);
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/releases/:id/deployments",
    {
      schema: {
        tags: ["deployments"],
        summary: "The deployments of one release, newest first (empty when it was never deployed)",
        params: { type: "object", properties: { id: uuidSchema }, required: ["id"] },
        response: { 200: obj({ deployments: arr(deploymentSchema) }), 400: problemSchema },
      },
    },
    async (request) => ({ deployments: await deploymentsOfRelease(pool, request.params.id) }),
  );

  app.get(
    "/v1/environments",
    {
      schema: {
        tags: ["deployments"],
        summary: "Environments that had a deployment outcome: health, newest outcome, number of inventory entries",
        response: {
          200: obj({
            environments: arr({
              ...environmentSchema,
              properties: { ...environmentSchema.properties, entries: { type: "integer" } },
            }),
          }),
        },
      },
    },
    async () => {
      const { rows } = await pool.query(
        `SELECT v.*, (SELECT count(*) FROM environment_inventory_view i WHERE i.environment = v.environment) AS entries
         FROM environment_view v ORDER BY environment`,
      );
      return { environments: rows.map((r) => ({ ...toEnvironment(r), entries: Number(r.entries) })) };
    },
  );

  app.get<{ Params: { environment: string }; Querystring: { targetCiId?: string; artifactName?: string } }>(
    "/v1/environments/:environment/inventory",
    {
      schema: {
        tags: ["deployments"],
        summary:
          "What runs where in one environment: each artifact version per target, since when, by which deployment",
        description:
          "Built from the deployment outcomes in the environment's order (environment_sequence), whatever order they " +
          "arrived in; a rollback replaces the inventory with the baseline it restored.",
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
          200: obj({ ...environmentSchema.properties, entries: arr(inventoryEntrySchema) }),
          404: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { environment } = request.params;
      const { rows } = await pool.query("SELECT * FROM environment_view WHERE environment = $1", [environment]);
      if (!rows[0]) return notFound(reply, `no deployment outcome for environment ${environment}`);
      const { where, args } = equalityFilters({
        "i.environment": environment,
        "i.target_ci_id": request.query.targetCiId,
        "i.artifact_name": request.query.artifactName,
      });
      const entries = await pool.query(
        `SELECT i.*, c.name AS target_name FROM environment_inventory_view i
           LEFT JOIN cmdb_ci_view c ON c.ci_id = i.target_ci_id
         WHERE ${where.join(" AND ")} ORDER BY i.target_ci_id, i.artifact_name`,
        args,
      );
      return {
        ...toEnvironment(rows[0]),
        entries: entries.rows.map((e) => ({
          targetCiId: e.target_ci_id,
          targetName: e.target_name,
          artifactName: e.artifact_name,
          artifactVersion: e.artifact_version,
          artifactId: e.artifact_id,
          since: e.since,
          deploymentId: e.deployment_id,
          releaseId: e.release_id,
          via: e.via,
        })),
      };
    },
  );
}

const toEnvironment = (r: Record<string, unknown>) => ({
  environment: r.environment,
  health: r.health,
  lastDeploymentId: r.last_deployment_id,
  lastReleaseId: r.last_release_id,
  lastOutcome: r.last_outcome,
  lastEnvironmentSequence: Number(r.last_environment_sequence),
  updatedAt: r.updated_at,
});
