import type { fromBinary } from "@bufbuild/protobuf";
import { BASELINE_RULES_VERSION } from "@rdm/domain-kernel/configuration";
import { CONFIGURATION_EVENTS_TOPIC } from "@rdm/messaging";
import {
  CiLifecycleStatusSchema,
  CiTypeSchema,
  type Relationship,
  RelationshipTypeSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ArtifactQuarantinedSchema,
  ArtifactRegisteredSchema,
  ArtifactRetiredSchema,
  ArtifactVerifiedSchema,
  BaselineDeploymentRecordedSchema,
  ConfigurationItemRegisteredSchema,
  ConfigurationItemStatusChangedSchema,
  ConfigurationItemUpdatedSchema,
  RelationshipAddedSchema,
  RelationshipRemovedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import type pg from "pg";
import { enumName } from "../enums.js";
import { type ProjectedEvent, type Projection, versionGuard } from "../projection.js";
import { projectBaselineRecorded, refoldBaselines } from "./baselines.js";
import { configurationProjectionMigrations } from "./migrations.js";

const CONFIGURATION_EVENT_TYPES = [
  ConfigurationItemRegisteredSchema,
  ConfigurationItemUpdatedSchema,
  ConfigurationItemStatusChangedSchema,
  RelationshipAddedSchema,
  RelationshipRemovedSchema,
  ArtifactRegisteredSchema,
  ArtifactVerifiedSchema,
  ArtifactQuarantinedSchema,
  ArtifactRetiredSchema,
  BaselineDeploymentRecordedSchema,
];

type ConfigurationEvent = ReturnType<
  typeof fromBinary<
    | typeof ConfigurationItemRegisteredSchema
    | typeof ConfigurationItemUpdatedSchema
    | typeof ConfigurationItemStatusChangedSchema
    | typeof RelationshipAddedSchema
    | typeof RelationshipRemovedSchema
    | typeof ArtifactRegisteredSchema
    | typeof ArtifactVerifiedSchema
    | typeof ArtifactQuarantinedSchema
    | typeof ArtifactRetiredSchema
    | typeof BaselineDeploymentRecordedSchema
  >
>;

const relationshipType = (r: Relationship | undefined) => enumName(RelationshipTypeSchema, r?.type ?? 0);

function summary(m: ConfigurationEvent): string {
  switch (m.$typeName) {
    case "rdm.configuration.v1.ConfigurationItemRegistered":
      return `registered "${m.name}"`;
    case "rdm.configuration.v1.ConfigurationItemUpdated": {
      const parts: string[] = [];
      if (m.name) parts.push(`name -> "${m.name}"`);
      if (m.owner) parts.push(`owner -> ${m.owner}`);
      for (const [key, value] of Object.entries(m.setAttributes)) parts.push(`${key} = "${value}"`);
      for (const key of m.removedAttributes) parts.push(`${key} removed`);
      return `updated: ${parts.join(", ")}`;
    }
    case "rdm.configuration.v1.ConfigurationItemStatusChanged":
      return `status ${enumName(CiLifecycleStatusSchema, m.from)} -> ${enumName(CiLifecycleStatusSchema, m.to)}`;
    case "rdm.configuration.v1.RelationshipAdded":
      return `${relationshipType(m.relationship)} ${m.relationship?.targetCiId} added`;
    case "rdm.configuration.v1.RelationshipRemoved":
      return `${relationshipType(m.relationship)} ${m.relationship?.targetCiId} removed`;
    default:
      return "";
  }
}

/** CMDB events: the CI row (version-guarded), its relationships and its history. */
async function applyCiEvent(event: ProjectedEvent<ConfigurationEvent>, tx: pg.PoolClient): Promise<void> {
  const { message: m, occurredAt: at, actor } = event;
  const version = event.version.toString();
  const history = async (ciId: string) => {
    await tx.query(
      `INSERT INTO cmdb_ci_history_view (ci_id, version, occurred_at, actor, event_type, summary)
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
      [ciId, version, at, actor, m.$typeName, summary(m)],
    );
  };
  /** Bumps the CI's version; false when this event was applied already. */
  const touchCi = async (ciId: string, set = "", args: unknown[] = []) => {
    const { rowCount } = await tx.query(
      `UPDATE cmdb_ci_view SET version = $2, updated_at = $3${set} WHERE ci_id = $1 AND ${versionGuard("version", 2)}`,
      [ciId, version, at, ...args],
    );
    return (rowCount ?? 0) > 0;
  };
  switch (m.$typeName) {
    case "rdm.configuration.v1.ConfigurationItemRegistered":
      await tx.query(
        `INSERT INTO cmdb_ci_view (ci_id, name, type, owner, status, attributes, version, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (ci_id) DO NOTHING`,
        [
          m.ciId,
          m.name,
          enumName(CiTypeSchema, m.type),
          m.owner,
          enumName(CiLifecycleStatusSchema, m.status),
          JSON.stringify(m.attributes),
          version,
          at,
        ],
      );
      return history(m.ciId);
    case "rdm.configuration.v1.ConfigurationItemUpdated":
      await touchCi(
        m.ciId,
        `, name = COALESCE(NULLIF($4, ''), name), owner = COALESCE(NULLIF($5, ''), owner),
           attributes = (attributes || $6::jsonb) - $7::text[]`,
        [m.name, m.owner, JSON.stringify(m.setAttributes), m.removedAttributes],
      );
      return history(m.ciId);
    case "rdm.configuration.v1.ConfigurationItemStatusChanged":
      await touchCi(m.ciId, ", status = $4", [enumName(CiLifecycleStatusSchema, m.to)]);
      return history(m.ciId);
    case "rdm.configuration.v1.RelationshipAdded":
    case "rdm.configuration.v1.RelationshipRemoved": {
      const r = m.relationship;
      if (!r) return;
      if (await touchCi(r.sourceCiId)) {
        await tx.query(
          m.$typeName === "rdm.configuration.v1.RelationshipAdded"
            ? `INSERT INTO cmdb_relationship_view (source_ci_id, type, target_ci_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
            : `DELETE FROM cmdb_relationship_view WHERE source_ci_id = $1 AND type = $2 AND target_ci_id = $3`,
          [r.sourceCiId, relationshipType(r), r.targetCiId],
        );
      }
      return history(r.sourceCiId);
    }
  }
}

/** DML events: the artifact row with its status and integrity (version-guarded). */
async function applyArtifactEvent(event: ProjectedEvent<ConfigurationEvent>, tx: pg.PoolClient): Promise<void> {
  const { message: m, occurredAt: at, actor } = event;
  const version = event.version.toString();
  const guard = versionGuard("stream_version", 2);
  switch (m.$typeName) {
    case "rdm.configuration.v1.ArtifactRegistered":
      await tx.query(
        `INSERT INTO dml_artifact_view (artifact_id, name, version, sha256, size_bytes, media_uri, dependencies, status,
           integrity, status_reason, registered_by, registered_at, stream_version)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'ACTIVE', 'UNVERIFIED', '', $8, $9, $10) ON CONFLICT DO NOTHING`,
        [
          m.artifactId,
          m.name,
          m.version,
          m.sha256,
          m.sizeBytes.toString(),
          m.mediaUri,
          JSON.stringify(m.dependencies.map((d) => ({ name: d.name, versionRange: d.versionRange }))),
          actor,
          at,
          version,
        ],
      );
      return;
    case "rdm.configuration.v1.ArtifactVerified":
      await tx.query(
        `UPDATE dml_artifact_view SET integrity = 'VERIFIED', last_verified_at = $3, stream_version = $2
         WHERE artifact_id = $1 AND ${guard}`,
        [m.artifactId, version, at],
      );
      return;
    case "rdm.configuration.v1.ArtifactQuarantined": {
      const mismatch = m.actualSha256 !== "";
      await tx.query(
        `UPDATE dml_artifact_view SET stream_version = $2, status_reason = $3,
           status = CASE WHEN status = 'RETIRED' THEN status ELSE 'QUARANTINED' END,
           integrity = CASE WHEN $4 THEN 'MISMATCH' ELSE integrity END,
           last_verified_at = CASE WHEN $4 THEN $5 ELSE last_verified_at END
         WHERE artifact_id = $1 AND ${guard}`,
        [m.artifactId, version, m.reason, mismatch, at],
      );
      return;
    }
    case "rdm.configuration.v1.ArtifactRetired":
      await tx.query(
        `UPDATE dml_artifact_view SET status = 'RETIRED', status_reason = $3, stream_version = $2
         WHERE artifact_id = $1 AND ${guard}`,
        [m.artifactId, version, m.reason],
      );
      return;
  }
}

/**
 * The CMDB, DML and baseline views. Every update is guarded by the stream version, so a
 * replayed event is a no-op; the baselines are folded with the kernel's baseline fold and
 * refolded when its version changes.
 */
export const configurationProjection: Projection<ConfigurationEvent> = {
  name: "gateway.configuration",
  topic: CONFIGURATION_EVENTS_TOPIC,
  handles: CONFIGURATION_EVENT_TYPES,
  migrations: configurationProjectionMigrations,
  rules: { version: BASELINE_RULES_VERSION, rebuild: refoldBaselines },
  async apply(event, tx) {
    const m = event.message;
    if (m.$typeName === "rdm.configuration.v1.BaselineDeploymentRecorded")
      return projectBaselineRecorded(tx, m, event.version.toString(), event.occurredAt);
    if (m.$typeName.startsWith("rdm.configuration.v1.Artifact")) return applyArtifactEvent(event, tx);
    return applyCiEvent(event, tx);
  },
};
