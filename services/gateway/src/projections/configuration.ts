import { createRegistry, type fromBinary } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import type { CloudEvent } from "@rdm/messaging";
import { PermanentError } from "@rdm/messaging";
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
import { baselineEventsMigration, projectBaselineRecorded } from "./baselines.js";
import { enumName } from "./releases.js";
import { decodeStorable } from "./storable-text.js";

export const CONFIGURATION_EVENTS_TOPIC = "rdm.configuration.events.v1";

export const configurationProjectionMigrations = [
  {
    version: 1,
    name: "CMDB, DML and baseline views",
    sql: `
      CREATE TABLE cmdb_ci_view (
        ci_id      text PRIMARY KEY,
        name       text NOT NULL,
        type       text NOT NULL,
        owner      text NOT NULL,
        status     text NOT NULL,
        attributes jsonb NOT NULL,
        version    bigint NOT NULL,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL
      );
      CREATE INDEX cmdb_ci_view_page ON cmdb_ci_view (lower(name), ci_id);
      CREATE TABLE cmdb_relationship_view (
        source_ci_id text NOT NULL,
        type         text NOT NULL,
        target_ci_id text NOT NULL,
        PRIMARY KEY (source_ci_id, type, target_ci_id)
      );
      CREATE INDEX cmdb_relationship_view_target ON cmdb_relationship_view (target_ci_id);
      CREATE TABLE cmdb_ci_history_view (
        ci_id       text NOT NULL,
        version     bigint NOT NULL,
        occurred_at timestamptz NOT NULL,
        actor       text NOT NULL,
        event_type  text NOT NULL,
        summary     text NOT NULL,
        PRIMARY KEY (ci_id, version)
      );
      CREATE TABLE dml_artifact_view (
        artifact_id      text PRIMARY KEY,
        name             text NOT NULL,
        version          text NOT NULL,
        sha256           text NOT NULL,
        size_bytes       bigint NOT NULL,
        media_uri        text NOT NULL,
        dependencies     jsonb NOT NULL,
        status           text NOT NULL,
        integrity        text NOT NULL,
        status_reason    text NOT NULL,
        registered_by    text NOT NULL,
        registered_at    timestamptz NOT NULL,
        last_verified_at timestamptz,
        stream_version   bigint NOT NULL
      );
      CREATE INDEX dml_artifact_view_page ON dml_artifact_view (registered_at DESC, artifact_id DESC);
      CREATE TABLE baseline_entry_view (
        environment      text NOT NULL,
        ci_id            text NOT NULL,
        artifact_name    text NOT NULL,
        artifact_version text NOT NULL,
        artifact_id      text NOT NULL,
        deployment_id    text NOT NULL,
        deployed_at      timestamptz NOT NULL,
        PRIMARY KEY (environment, ci_id, artifact_name)
      );
      CREATE TABLE baseline_view (
        environment                   text PRIMARY KEY,
        health                        text NOT NULL,
        last_deployment_id            text NOT NULL,
        last_known_good               jsonb NOT NULL,
        last_known_good_deployment_id text,
        last_known_good_at            timestamptz,
        version                       bigint NOT NULL,
        updated_at                    timestamptz NOT NULL
      );`,
  },
  baselineEventsMigration,
];

const registry = createRegistry(
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
);

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
const when = (t: Timestamp | undefined, fallback: Date) => (t ? timestampDate(t) : fallback);

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

/**
 * Applies one configuration event to the CMDB, DML and baseline views inside the consumer's
 * transaction. Every update is guarded by the stream version, so a replayed event is a no-op;
 * unknown event types are skipped, undecodable bytes are dead-lettered.
 */
export async function projectConfigurationEvent(event: CloudEvent, tx: pg.PoolClient): Promise<void> {
  const schema = registry.getMessage(event.type);
  if (!schema) return;
  let m: ConfigurationEvent;
  try {
    m = decodeStorable(schema, event.data) as ConfigurationEvent;
  } catch (error) {
    throw new PermanentError(`cannot decode ${event.type}: ${(error as Error).message}`);
  }
  const at = when(m.metadata?.occurredAt, event.time);
  const version = (m.metadata?.streamVersion ?? 0n).toString();
  const actor = m.metadata?.actor ?? "";

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
      `UPDATE cmdb_ci_view SET version = $2, updated_at = $3${set} WHERE ci_id = $1 AND version < $2`,
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
      await history(m.ciId);
      return;
    case "rdm.configuration.v1.ConfigurationItemUpdated":
      await touchCi(
        m.ciId,
        `, name = COALESCE(NULLIF($4, ''), name), owner = COALESCE(NULLIF($5, ''), owner),
           attributes = (attributes || $6::jsonb) - $7::text[]`,
        [m.name, m.owner, JSON.stringify(m.setAttributes), m.removedAttributes],
      );
      await history(m.ciId);
      return;
    case "rdm.configuration.v1.ConfigurationItemStatusChanged":
      await touchCi(m.ciId, ", status = $4", [enumName(CiLifecycleStatusSchema, m.to)]);
      await history(m.ciId);
      return;
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
      await history(r.sourceCiId);
      return;
    }
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
         WHERE artifact_id = $1 AND stream_version < $2`,
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
         WHERE artifact_id = $1 AND stream_version < $2`,
        [m.artifactId, version, m.reason, mismatch, at],
      );
      return;
    }
    case "rdm.configuration.v1.ArtifactRetired":
      await tx.query(
        `UPDATE dml_artifact_view SET status = 'RETIRED', status_reason = $3, stream_version = $2
         WHERE artifact_id = $1 AND stream_version < $2`,
        [m.artifactId, version, m.reason],
      );
      return;
    case "rdm.configuration.v1.BaselineDeploymentRecorded":
      await projectBaselineRecorded(tx, m, version, at);
      return;
  }
}
