import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { foldBaseline } from "@rdm/domain-kernel/configuration";
import { instantOf } from "@rdm/proto";
import { type BaselineEntry, EnvironmentHealthSchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  type BaselineDeploymentRecorded,
  BaselineDeploymentRecordedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import type pg from "pg";
import { enumName } from "../enums.js";

/** Added to the configuration projection's migrations: the recorded outcomes each baseline is folded from. */
export const baselineEventsMigration = {
  version: 2,
  name: "baseline outcomes, folded in environment order as the configuration service does",
  sql: `
    -- Filled from this version on: a gateway that projected baselines before must be rebuilt
    -- (new consumer group and database) for its baselines to follow environment order.
    CREATE TABLE baseline_event_view (
      environment text NOT NULL,
      version     bigint NOT NULL,
      event       bytea NOT NULL,
      PRIMARY KEY (environment, version)
    );`,
};

const entryJson = (e: BaselineEntry, at: Date) => ({
  ciId: e.ciId,
  artifactName: e.artifactName,
  artifactVersion: e.artifactVersion,
  artifactId: e.artifactId,
  deploymentId: e.deploymentId,
  deployedAt: instantOf(e.deployedAt, at),
});

/**
 * Keeps the baseline views equal to the configuration service's baselines: every recorded
 * outcome is kept, and the environment's baseline is folded with the service's own
 * foldBaseline (from the domain kernel: environment order, rollbacks restoring exactly), so an
 * outcome recorded late lands where its environment sequence puts it, here as in the service.
 */
export async function projectBaselineRecorded(
  tx: pg.PoolClient,
  m: BaselineDeploymentRecorded,
  version: string,
  at: Date,
): Promise<void> {
  const { rowCount } = await tx.query(
    "INSERT INTO baseline_event_view (environment, version, event) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
    [m.environment, version, Buffer.from(toBinary(BaselineDeploymentRecordedSchema, m))],
  );
  if (!rowCount) return; // replayed
  await refoldBaseline(tx, m.environment, at);
}

/** Every environment's baseline folded again from its outcomes (the baseline fold changed). */
export async function refoldBaselines(tx: pg.PoolClient): Promise<void> {
  const { rows } = await tx.query<{ environment: string; updated_at: Date }>(
    "SELECT environment, updated_at FROM baseline_view",
  );
  for (const row of rows) await refoldBaseline(tx, row.environment, row.updated_at);
}

/** The environment's baseline views from all its recorded outcomes; `at` when no outcome says when. */
async function refoldBaseline(tx: pg.PoolClient, environment: string, at: Date): Promise<void> {
  const { rows } = await tx.query<{ event: Buffer }>(
    "SELECT event FROM baseline_event_view WHERE environment = $1 ORDER BY version",
    [environment],
  );
  const { baseline } = foldBaseline(rows.map((r) => fromBinary(BaselineDeploymentRecordedSchema, r.event)));
  if (!baseline) return;
  const updatedAt = instantOf(baseline.updatedAt, at);
  await tx.query("DELETE FROM baseline_entry_view WHERE environment = $1", [environment]);
  await tx.query(
    `INSERT INTO baseline_entry_view (environment, ci_id, artifact_name, artifact_version, artifact_id, deployment_id,
       deployed_at)
     SELECT $1, e."ciId", e."artifactName", e."artifactVersion", e."artifactId", e."deploymentId", e."deployedAt"
     FROM jsonb_to_recordset($2::jsonb) AS e("ciId" text, "artifactName" text, "artifactVersion" text,
       "artifactId" text, "deploymentId" text, "deployedAt" timestamptz)`,
    [environment, JSON.stringify(baseline.entries.map((e) => entryJson(e, updatedAt)))],
  );
  await tx.query(
    `INSERT INTO baseline_view (environment, health, last_deployment_id, last_known_good, last_known_good_deployment_id,
       last_known_good_at, version, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (environment) DO UPDATE SET health = $2, last_deployment_id = $3, last_known_good = $4,
       last_known_good_deployment_id = $5, last_known_good_at = $6, version = $7, updated_at = $8`,
    [
      environment,
      enumName(EnvironmentHealthSchema, baseline.health),
      baseline.lastDeploymentId,
      JSON.stringify(baseline.lastKnownGood.map((e) => entryJson(e, updatedAt))),
      baseline.lastKnownGoodDeploymentId || null,
      instantOf(baseline.lastKnownGoodAt, null),
      baseline.version.toString(),
      updatedAt,
    ],
  );
}
