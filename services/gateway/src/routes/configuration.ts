import { transitiveDependents } from "@rdm/configuration/impact";
import { RelationshipType, RelationshipTypeSchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { decodePageToken, encodePageToken, isIsoTimestamp } from "@rdm/runtime";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { badRequest, equalityFilters, notFound, problemSchema } from "./http.js";

const CI_TYPES = [
  "BUSINESS_SERVICE",
  "SERVICE",
  "APPLICATION",
  "COMPONENT",
  "HOST",
  "DATABASE",
  "ENVIRONMENT",
  "NETWORK",
  "OTHER",
];
const CI_STATUSES = ["PLANNED", "IN_DEVELOPMENT", "LIVE", "MAINTENANCE", "RETIRED"];
const RELATIONSHIP_TYPES = ["DEPENDS_ON", "RUNS_ON", "PART_OF", "CONNECTS_TO"];

const ciSchema = {
  type: "object",
  properties: {
    ciId: { type: "string" },
    name: { type: "string" },
    type: { type: "string", enum: CI_TYPES },
    owner: { type: "string" },
    status: { type: "string", enum: CI_STATUSES },
    attributes: { type: "object", additionalProperties: { type: "string" } },
    version: { type: "integer" },
    createdAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
  },
} as const;

const relationshipSchema = {
  type: "object",
  properties: {
    sourceCiId: { type: "string" },
    sourceName: { type: ["string", "null"] },
    type: { type: "string", enum: RELATIONSHIP_TYPES },
    targetCiId: { type: "string" },
    targetName: { type: ["string", "null"] },
  },
} as const;

const artifactSchema = {
  type: "object",
  properties: {
    artifactId: { type: "string" },
    name: { type: "string" },
    version: { type: "string" },
    sha256: { type: "string" },
    sizeBytes: { type: "integer" },
    mediaUri: { type: "string" },
    dependencies: {
      type: "array",
      items: { type: "object", properties: { name: { type: "string" }, versionRange: { type: "string" } } },
    },
    status: { type: "string", enum: ["ACTIVE", "QUARANTINED", "RETIRED"] },
    integrity: { type: "string", enum: ["UNVERIFIED", "VERIFIED", "MISMATCH"] },
    statusReason: { type: "string" },
    registeredBy: { type: "string" },
    registeredAt: { type: "string", format: "date-time" },
    lastVerifiedAt: { type: ["string", "null"], format: "date-time" },
  },
} as const;

const entrySchema = {
  type: "object",
  properties: {
    ciId: { type: "string" },
    ciName: { type: ["string", "null"] },
    artifactName: { type: "string" },
    artifactVersion: { type: "string" },
    artifactId: { type: "string" },
    deploymentId: { type: "string" },
    deployedAt: { type: "string", format: "date-time" },
  },
} as const;

interface CiRow {
  ci_id: string;
  name: string;
  type: string;
  owner: string;
  status: string;
  attributes: Record<string, string>;
  version: string;
  created_at: Date;
  updated_at: Date;
}
const toCi = (r: CiRow) => ({
  ciId: r.ci_id,
  name: r.name,
  type: r.type,
  owner: r.owner,
  status: r.status,
  attributes: r.attributes,
  version: Number(r.version),
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

interface ArtifactRow {
  artifact_id: string;
  name: string;
  version: string;
  sha256: string;
  size_bytes: string;
  media_uri: string;
  dependencies: { name: string; versionRange: string }[];
  status: string;
  integrity: string;
  status_reason: string;
  registered_by: string;
  registered_at: Date;
  last_verified_at: Date | null;
}
const toArtifact = (r: ArtifactRow) => ({
  artifactId: r.artifact_id,
  name: r.name,
  version: r.version,
  sha256: r.sha256,
  sizeBytes: Number(r.size_bytes),
  mediaUri: r.media_uri,
  dependencies: r.dependencies,
  status: r.status,
  integrity: r.integrity,
  statusReason: r.status_reason,
  registeredBy: r.registered_by,
  registeredAt: r.registered_at,
  lastVerifiedAt: r.last_verified_at,
});

/** Relationship names as the view stores them, and back. */
const RELATIONSHIP_NUMBER: Record<string, RelationshipType> = Object.fromEntries(
  RelationshipTypeSchema.values.map((v) => [v.localName, v.number]),
);
const RELATIONSHIP_NAME = Object.fromEntries(Object.entries(RELATIONSHIP_NUMBER).map(([name, n]) => [n, name]));

/**
 * The transitive dependents of a CI: the configuration service's walk (same depths, same
 * tie-break among equally short paths) over the gateway's relationship view.
 */
async function impactOf(pool: pg.Pool, rootId: string, maxDepth: number) {
  const reached = await transitiveDependents(
    rootId,
    async (causeIds) => {
      const { rows } = await pool.query<{ source_ci_id: string; type: string; target_ci_id: string }>(
        `SELECT source_ci_id, type, target_ci_id FROM cmdb_relationship_view
           WHERE target_ci_id = ANY($1) AND type <> 'PART_OF'
         UNION ALL
         SELECT source_ci_id, type, target_ci_id FROM cmdb_relationship_view
           WHERE source_ci_id = ANY($1) AND type = 'PART_OF'`,
        [causeIds],
      );
      return rows.map((r) => ({
        sourceCiId: r.source_ci_id,
        type: RELATIONSHIP_NUMBER[r.type] ?? RelationshipType.UNSPECIFIED,
        targetCiId: r.target_ci_id,
      }));
    },
    { maxDepth },
  );
  return reached.map((r) => ({
    ciId: r.ciId,
    depth: r.depth,
    path: r.path,
    pathRelationships: r.pathRelationships.map((t) => RELATIONSHIP_NAME[t] ?? "UNSPECIFIED"),
  }));
}

/** CMDB browse, CI detail, impact view, the DML with integrity status, and "what runs where". */
export function configurationRoutes(app: FastifyInstance, pool: pg.Pool) {
  app.get<{
    Querystring: { type?: string; owner?: string; status?: string; q?: string; pageSize: number; pageToken?: string };
  }>(
    "/v1/cmdb/items",
    {
      schema: {
        tags: ["configuration"],
        summary: "Configuration items by name, filtered by type, owner, status or name substring",
        querystring: {
          type: "object",
          properties: {
            type: { type: "string", enum: CI_TYPES },
            owner: { type: "string" },
            status: { type: "string", enum: CI_STATUSES },
            q: { type: "string", maxLength: 200 },
            pageSize: { type: "integer", minimum: 1, maximum: 500, default: 100 },
            pageToken: { type: "string", maxLength: 500 },
          },
          additionalProperties: false,
        },
        response: {
          200: {
            type: "object",
            properties: { items: { type: "array", items: ciSchema }, nextPageToken: { type: ["string", "null"] } },
          },
          400: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const { type, owner, status, q, pageSize, pageToken } = request.query;
      const { where, args } = equalityFilters({ type, owner, status });
      // Case folding by PostgreSQL's lower() throughout, sort key and page token included: JavaScript's
      // toLowerCase differs for some names (İ, a final Σ), which would skip or repeat rows.
      if (q) {
        args.push(q);
        where.push(`strpos(lower(name), lower($${args.length})) > 0`);
      }
      if (pageToken !== undefined) {
        const cursor = decodePageToken(
          pageToken,
          () => true,
          () => true,
        );
        if (!cursor) return badRequest(reply, "pageToken is not valid");
        args.push(cursor[0], cursor[1]);
        where.push(`(lower(name), ci_id) > ($${args.length - 1}, $${args.length})`);
      }
      args.push(pageSize + 1);
      const { rows } = await pool.query<CiRow & { sort_name: string }>(
        `SELECT *, lower(name) AS sort_name FROM cmdb_ci_view ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY lower(name), ci_id LIMIT $${args.length}`,
        args,
      );
      const page = rows.slice(0, pageSize);
      const last = page.at(-1);
      return {
        items: page.map(toCi),
        nextPageToken: rows.length > pageSize && last ? encodePageToken(last.sort_name, last.ci_id) : null,
      };
    },
  );

  app.get<{ Params: { id: string } }>(
    "/v1/cmdb/items/:id",
    {
      schema: {
        tags: ["configuration"],
        summary: "One configuration item with its relationships (both directions) and its history",
        params: { type: "object", properties: { id: { type: "string", maxLength: 200 } }, required: ["id"] },
        response: {
          200: {
            type: "object",
            properties: {
              item: ciSchema,
              outgoing: { type: "array", items: relationshipSchema },
              incoming: { type: "array", items: relationshipSchema },
              history: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    version: { type: "integer" },
                    occurredAt: { type: "string", format: "date-time" },
                    actor: { type: "string" },
                    eventType: { type: "string" },
                    summary: { type: "string" },
                  },
                },
              },
            },
          },
          404: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const { rows } = await pool.query<CiRow>("SELECT * FROM cmdb_ci_view WHERE ci_id = $1", [id]);
      const row = rows[0];
      if (!row) return notFound(reply, `configuration item ${id} not found`);
      const relationships = await pool.query<{
        source_ci_id: string;
        source_name: string | null;
        type: string;
        target_ci_id: string;
        target_name: string | null;
      }>(
        `SELECT r.source_ci_id, s.name AS source_name, r.type, r.target_ci_id, t.name AS target_name
         FROM cmdb_relationship_view r
         LEFT JOIN cmdb_ci_view s ON s.ci_id = r.source_ci_id
         LEFT JOIN cmdb_ci_view t ON t.ci_id = r.target_ci_id
         WHERE r.source_ci_id = $1 OR r.target_ci_id = $1
         ORDER BY r.source_ci_id, r.type, r.target_ci_id`,
        [id],
      );
      const history = await pool.query<{
        version: string;
        occurred_at: Date;
        actor: string;
        event_type: string;
        summary: string;
      }>("SELECT * FROM cmdb_ci_history_view WHERE ci_id = $1 ORDER BY version", [id]);
      const toRelationship = (r: (typeof relationships.rows)[number]) => ({
        sourceCiId: r.source_ci_id,
        sourceName: r.source_name,
        type: r.type,
        targetCiId: r.target_ci_id,
        targetName: r.target_name,
      });
      return {
        item: toCi(row),
        outgoing: relationships.rows.filter((r) => r.source_ci_id === id).map(toRelationship),
        incoming: relationships.rows.filter((r) => r.target_ci_id === id).map(toRelationship),
        history: history.rows.map((h) => ({
          version: Number(h.version),
          occurredAt: h.occurred_at,
          actor: h.actor,
          eventType: h.event_type,
          summary: h.summary,
        })),
      };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { maxDepth: number } }>(
    "/v1/cmdb/items/:id/impact",
    {
      schema: {
        tags: ["configuration"],
        summary: "Everything affected when this CI fails: transitive dependents with depth and path",
        params: { type: "object", properties: { id: { type: "string", maxLength: 200 } }, required: ["id"] },
        querystring: {
          type: "object",
          properties: { maxDepth: { type: "integer", minimum: 0, maximum: 1000, default: 0 } },
          additionalProperties: false,
        },
        response: {
          200: {
            type: "object",
            properties: {
              root: ciSchema,
              impacted: {
                type: "array",
                items: {
                  type: "object",
                  properties: {
                    ciId: { type: "string" },
                    name: { type: ["string", "null"] },
                    type: { type: ["string", "null"] },
                    owner: { type: ["string", "null"] },
                    depth: { type: "integer" },
                    path: { type: "array", items: { type: "string" } },
                    pathRelationships: { type: "array", items: { type: "string" } },
                  },
                },
              },
              impactedBusinessServices: { type: "array", items: { type: "string" } },
            },
          },
          404: problemSchema,
        },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const { rows } = await pool.query<CiRow>("SELECT * FROM cmdb_ci_view WHERE ci_id = $1", [id]);
      const root = rows[0];
      if (!root) return notFound(reply, `configuration item ${id} not found`);
      const reached = await impactOf(pool, id, request.query.maxDepth);
      const names = await pool.query<{ ci_id: string; name: string; type: string; owner: string }>(
        "SELECT ci_id, name, type, owner FROM cmdb_ci_view WHERE ci_id = ANY($1)",
        [reached.map((r) => r.ciId)],
      );
      const byId = new Map(names.rows.map((r) => [r.ci_id, r]));
      const impacted = reached
        .map((r) => ({
          ciId: r.ciId,
          name: byId.get(r.ciId)?.name ?? null,
          type: byId.get(r.ciId)?.type ?? null,
          owner: byId.get(r.ciId)?.owner ?? null,
          depth: r.depth,
          path: r.path,
          pathRelationships: r.pathRelationships,
        }))
        .sort(
          (a, b) => a.depth - b.depth || (a.name ?? "").localeCompare(b.name ?? "") || a.ciId.localeCompare(b.ciId),
        );
      return {
        root: toCi(root),
        impacted,
        impactedBusinessServices: impacted.filter((i) => i.type === "BUSINESS_SERVICE").map((i) => i.ciId),
      };
    },
  );

  app.get<{
    Querystring: { name?: string; status?: string; integrity?: string; pageSize: number; pageToken?: string };
  }>(
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
      if (pageToken !== undefined) {
        const cursor = decodePageToken(pageToken, isIsoTimestamp, () => true);
        if (!cursor) return badRequest(reply, "pageToken is not valid");
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
          rows.length > pageSize && last ? encodePageToken(last.registered_at.toISOString(), last.artifact_id) : null,
      };
    },
  );

  app.get<{ Params: { id: string } }>(
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

  const baselineSchema = {
    type: "object",
    properties: {
      environment: { type: "string" },
      health: { type: "string", enum: ["HEALTHY", "DEGRADED"] },
      lastDeploymentId: { type: "string" },
      entries: { type: "array", items: entrySchema },
      lastKnownGood: { type: "array", items: entrySchema },
      lastKnownGoodDeploymentId: { type: ["string", "null"] },
      lastKnownGoodAt: { type: ["string", "null"], format: "date-time" },
      version: { type: "integer" },
      updatedAt: { type: "string", format: "date-time" },
    },
  } as const;

  interface BaselineRow {
    environment: string;
    health: string;
    last_deployment_id: string;
    last_known_good: Record<string, string>[];
    last_known_good_deployment_id: string | null;
    last_known_good_at: Date | null;
    version: string;
    updated_at: Date;
  }

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

  app.get<{ Params: { environment: string } }>(
    "/v1/baselines/:environment",
    {
      schema: {
        tags: ["configuration"],
        summary: "What runs where in one environment, and the last known good state to back out to",
        params: {
          type: "object",
          properties: { environment: { type: "string", maxLength: 100 } },
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
        `SELECT e.*, c.name AS ci_name FROM baseline_entry_view e LEFT JOIN cmdb_ci_view c ON c.ci_id = e.ci_id
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
}
