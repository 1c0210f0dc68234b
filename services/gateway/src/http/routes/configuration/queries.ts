import { transitiveDependents } from "@rdm/domain-kernel/configuration";
import { RelationshipType, RelationshipTypeSchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import type pg from "pg";

export interface CiRow {
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
export const toCi = (r: CiRow) => ({
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

export interface ArtifactRow {
  artifact_id: string;
  name: string;
  version: string;
  sha256: string;
  size_bytes: string;
  media_uri: string;
  dependencies: { name: string; versionRange: string }[];
  status: "ACTIVE" | "QUARANTINED" | "RETIRED";
  integrity: "UNVERIFIED" | "VERIFIED" | "MISMATCH";
  status_reason: string;
  registered_by: string;
  registered_at: Date;
  last_verified_at: Date | null;
}
export const toArtifact = (r: ArtifactRow) => ({
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
export async function impactOf(pool: pg.Pool, rootId: string, maxDepth: number) {
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

export interface BaselineRow {
  environment: string;
  health: string;
  last_deployment_id: string;
  last_known_good: Record<string, string>[];
  last_known_good_deployment_id: string | null;
  last_known_good_at: Date | null;
  version: string;
  updated_at: Date;
}
