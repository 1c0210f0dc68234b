import type { fromBinary } from "@bufbuild/protobuf";
import { type CloudEvent, DEPLOYMENT_EVENTS_TOPIC, PermanentError } from "@rdm/messaging";
import {
  type DeployedArtifact,
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type pg from "pg";
import type { Projection } from "../projection.js";
import {
  applyOutcome,
  type EnvironmentSummary,
  foldInventory,
  type InventoryEntry,
  type InventoryOutcome,
  type OutcomeKind,
} from "./inventory.js";
import { deploymentProjectionMigrations } from "./migrations.js";

/** NOTIFY channel raised (at commit) whenever deployment feed rows are added; wakes SSE streams. */
export const DEPLOYMENT_FEED_CHANNEL = "rdm_gateway_deployment_feed";

const DEPLOYMENT_EVENT_TYPES = [
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
];

/** Whether this view records the event's feed row (with whether it changed the inventory); the plan view records the others'. */
export const feedsOwnRow = (eventType: string) =>
  DEPLOYMENT_EVENT_TYPES.some((schema) => schema.typeName === eventType);

type DeploymentEvent = ReturnType<
  typeof fromBinary<
    | typeof DeploymentStartedSchema
    | typeof DeploymentSucceededSchema
    | typeof DeploymentFailedSchema
    | typeof DeploymentRolledBackSchema
  >
>;

const OUTCOME_KINDS: Record<string, OutcomeKind> = {
  [DeploymentSucceededSchema.typeName]: "SUCCEEDED",
  [DeploymentFailedSchema.typeName]: "FAILED",
  [DeploymentRolledBackSchema.typeName]: "ROLLED_BACK",
};

const artifactsJson = (artifacts: DeployedArtifact[]) =>
  JSON.stringify(
    artifacts.map((a) => ({ artifactId: a.artifactId, name: a.name, version: a.version, targetCiIds: a.targetCiIds })),
  );

/**
 * The deployment's own row. Its state is the one of its newest event in environment order
 * (events without a sequence: the last to arrive, unless a sequenced one was applied).
 */
async function projectDeployment(tx: pg.PoolClient, m: DeploymentEvent, at: Date): Promise<void> {
  const state = OUTCOME_KINDS[m.$typeName] ?? "IN_PROGRESS";
  const started = m.$typeName === DeploymentStartedSchema.typeName;
  const finished =
    m.$typeName === DeploymentSucceededSchema.typeName || m.$typeName === DeploymentFailedSchema.typeName;
  const rolledBack = m.$typeName === DeploymentRolledBackSchema.typeName;
  const failed = m.$typeName === DeploymentFailedSchema.typeName ? m : undefined;
  await tx.query(
    `INSERT INTO deployment_view AS d (deployment_id, release_id, environment, state, state_sequence, strategy,
       artifacts, restored_artifacts, failure_reason, failed_target_ci_ids, rollback_reason, first_event_at,
       started_at, finished_at, rolled_back_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN '[]'::jsonb ELSE $8::jsonb END,
       CASE WHEN $7 THEN $8::jsonb END, $9, $10, $11, $12,
       CASE WHEN $13 THEN $12::timestamptz END, CASE WHEN $14 THEN $12::timestamptz END,
       CASE WHEN $7 THEN $12::timestamptz END, $12)
     ON CONFLICT (deployment_id) DO UPDATE SET
       release_id = COALESCE(NULLIF(d.release_id, ''), EXCLUDED.release_id),
       state = CASE WHEN EXCLUDED.state_sequence > d.state_sequence
                      OR (EXCLUDED.state_sequence = 0 AND d.state_sequence = 0) THEN EXCLUDED.state ELSE d.state END,
       state_sequence = GREATEST(d.state_sequence, EXCLUDED.state_sequence),
       strategy = COALESCE(NULLIF(EXCLUDED.strategy, ''), d.strategy),
       -- What was deployed: the outcome's list, else what the start announced.
       artifacts = CASE WHEN $14 OR ($13 AND d.artifacts = '[]'::jsonb) THEN EXCLUDED.artifacts ELSE d.artifacts END,
       restored_artifacts = COALESCE(EXCLUDED.restored_artifacts, d.restored_artifacts),
       failure_reason = COALESCE(NULLIF(EXCLUDED.failure_reason, ''), d.failure_reason),
       failed_target_ci_ids = CASE WHEN EXCLUDED.failed_target_ci_ids = '[]'::jsonb THEN d.failed_target_ci_ids
                                   ELSE EXCLUDED.failed_target_ci_ids END,
       rollback_reason = COALESCE(NULLIF(EXCLUDED.rollback_reason, ''), d.rollback_reason),
       first_event_at = LEAST(d.first_event_at, EXCLUDED.first_event_at),
       started_at = COALESCE(EXCLUDED.started_at, d.started_at),
       finished_at = COALESCE(EXCLUDED.finished_at, d.finished_at),
       rolled_back_at = COALESCE(EXCLUDED.rolled_back_at, d.rolled_back_at),
       updated_at = GREATEST(d.updated_at, EXCLUDED.updated_at)`,
    [
      m.deploymentId,
      m.releaseId,
      m.environment,
      state,
      m.environmentSequence.toString(),
      m.$typeName === DeploymentStartedSchema.typeName ? m.strategy : "",
      rolledBack,
      artifactsJson(m.artifacts),
      failed?.reason ?? "",
      JSON.stringify(failed?.failedTargetCiIds ?? []),
      rolledBack ? m.reason : "",
      at,
      started,
      finished,
    ],
  );
}

interface OutcomeRow {
  arrival: string;
  environment_sequence: string;
  kind: OutcomeKind;
  deployment_id: string;
  release_id: string;
  occurred_at: Date;
  artifacts: InventoryOutcome["artifacts"];
  live_colour: string;
  restored_artifact_names: string[];
  restored_target_ci_ids: string[];
}

const toOutcome = (row: OutcomeRow): InventoryOutcome => ({
  kind: row.kind,
  environmentSequence: BigInt(row.environment_sequence),
  arrival: BigInt(row.arrival),
  deploymentId: row.deployment_id,
  releaseId: row.release_id,
  occurredAt: row.occurred_at,
  artifacts: row.artifacts,
  liveColour: row.live_colour,
  restoredArtifactNames: row.restored_artifact_names,
  restoredTargetCiIds: row.restored_target_ci_ids,
});

async function currentInventory(tx: pg.PoolClient, environment: string): Promise<Map<string, InventoryEntry>> {
  const { rows } = await tx.query(
    `SELECT target_ci_id AS "targetCiId", artifact_name AS "artifactName", artifact_version AS "artifactVersion",
       artifact_id AS "artifactId", since, deployment_id AS "deploymentId", release_id AS "releaseId", via
     FROM environment_inventory_view WHERE environment = $1`,
    [environment],
  );
  return new Map(rows.map((e: InventoryEntry) => [`${e.targetCiId}\u0000${e.artifactName}`, e]));
}

async function saveInventory(
  tx: pg.PoolClient,
  environment: string,
  entries: InventoryEntry[],
  summary: EnvironmentSummary,
): Promise<void> {
  await tx.query("DELETE FROM environment_inventory_view WHERE environment = $1", [environment]);
  await tx.query(
    `INSERT INTO environment_inventory_view (environment, target_ci_id, artifact_name, artifact_version, artifact_id,
       since, deployment_id, release_id, via)
     SELECT $1, e."targetCiId", e."artifactName", e."artifactVersion", e."artifactId", e.since, e."deploymentId",
       e."releaseId", e.via
     FROM jsonb_to_recordset($2::jsonb) AS e("targetCiId" text, "artifactName" text, "artifactVersion" text,
       "artifactId" text, since timestamptz, "deploymentId" text, "releaseId" text, via text)`,
    [environment, JSON.stringify(entries)],
  );
  await tx.query(
    // An outcome naming no colour (not blue-green) leaves the one before serving traffic.
    `INSERT INTO environment_view (environment, health, last_deployment_id, last_release_id, last_outcome,
       last_environment_sequence, updated_at, live_colour)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (environment) DO UPDATE SET health = $2, last_deployment_id = $3, last_release_id = $4,
       last_outcome = $5, last_environment_sequence = $6, updated_at = $7,
       live_colour = COALESCE(NULLIF($8, ''), environment_view.live_colour)`,
    [
      environment,
      summary.health,
      summary.lastDeploymentId,
      summary.lastReleaseId,
      summary.lastOutcome,
      summary.lastEnvironmentSequence.toString(),
      summary.updatedAt,
      summary.liveColour,
    ],
  );
}

/**
 * Records an outcome and brings the environment's inventory up to date: the newest outcome in
 * environment order is applied on top of the inventory; one that arrives after a newer one
 * (another partition) has the environment folded again from all its outcomes, so it lands
 * where its sequence puts it.
 */
async function projectOutcome(
  tx: pg.PoolClient,
  event: CloudEvent,
  m: DeploymentEvent,
  kind: OutcomeKind,
  at: Date,
): Promise<boolean> {
  // One environment's outcomes one transaction at a time, also across gateway replicas.
  await tx.query("SELECT pg_advisory_xact_lock(hashtext('rdm_gateway_inventory'), hashtext($1))", [m.environment]);
  const { rows: recorded } = await tx.query<OutcomeRow>(
    `INSERT INTO deployment_outcome_log (event_id, environment, environment_sequence, kind, deployment_id, release_id,
       occurred_at, artifacts, live_colour, restored_artifact_names, restored_target_ci_ids)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING RETURNING *`,
    [
      event.id,
      m.environment,
      m.environmentSequence.toString(),
      kind,
      m.deploymentId,
      m.releaseId,
      at,
      artifactsJson(m.artifacts),
      "liveColour" in m ? m.liveColour : "",
      JSON.stringify("restoredArtifactNames" in m ? m.restoredArtifactNames : []),
      JSON.stringify("restoredTargetCiIds" in m ? m.restoredTargetCiIds : []),
    ],
  );
  const row = recorded[0];
  if (!row) return false; // the same outcome again
  const { rows: newer } = await tx.query(
    `SELECT 1 FROM deployment_outcome_log WHERE environment = $1 AND arrival <> $2
       AND (environment_sequence > $3 OR (environment_sequence = $3 AND arrival > $2)) LIMIT 1`,
    [m.environment, row.arrival, row.environment_sequence],
  );
  const outcome = toOutcome(row);
  if (newer.length === 0) {
    const entries = [...applyOutcome(await currentInventory(tx, m.environment), outcome).values()];
    const { summary } = foldInventory([outcome]);
    if (summary) await saveInventory(tx, m.environment, entries, summary);
    return true;
  }
  const { rows } = await tx.query<OutcomeRow>("SELECT * FROM deployment_outcome_log WHERE environment = $1", [
    m.environment,
  ]);
  const { entries, summary } = foldInventory(rows.map(toOutcome));
  if (summary) await saveInventory(tx, m.environment, entries, summary);
  return true;
}

/** One deployment event as the SSE streams serve it. */
export interface FeedEntry {
  eventId: string;
  deploymentId: string;
  releaseId: string;
  environment: string;
  eventType: string;
  /** Its position among the environment's outcomes (begins, outcomes, rollbacks given up); 0 for other events. */
  environmentSequence: bigint;
  occurredAt: Date;
  inventoryChanged: boolean;
}

/**
 * SSE readers resume after the last seq they saw: seqs commit in order, one transaction at a time.
 * Taken before any environment's inventory lock: a replica holding one of those while waiting for
 * this lock could wait for another that holds this one and wants its.
 */
export const lockDeploymentFeed = (tx: pg.PoolClient) =>
  tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [DEPLOYMENT_FEED_CHANNEL]);

/** The feed row of the event (once per event id), and the NOTIFY that wakes the SSE streams; under lockDeploymentFeed. */
export async function recordFeed(tx: pg.PoolClient, e: FeedEntry) {
  const { rowCount } = await tx.query(
    `INSERT INTO deployment_feed (event_id, deployment_id, release_id, environment, event_type, environment_sequence,
       occurred_at, inventory_changed)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING`,
    [
      e.eventId,
      e.deploymentId,
      e.releaseId,
      e.environment,
      e.eventType,
      e.environmentSequence.toString(),
      e.occurredAt,
      e.inventoryChanged,
    ],
  );
  if (rowCount) await tx.query("SELECT pg_notify($1, '')", [DEPLOYMENT_FEED_CHANNEL]);
}

/**
 * The deployment and inventory views. Event types this gateway does not know are skipped (the
 * deployment service adds types to the topic); an event naming no deployment or environment is
 * dead-lettered.
 */
export const deploymentProjection: Projection<DeploymentEvent> = {
  name: "gateway.deployments",
  topic: DEPLOYMENT_EVENTS_TOPIC,
  handles: DEPLOYMENT_EVENT_TYPES,
  migrations: deploymentProjectionMigrations,
  async apply(event, tx) {
    const { message: m, envelope, occurredAt } = event;
    if (!m.deploymentId || !m.environment) {
      throw new PermanentError(`${envelope.type} ${envelope.id} names no deployment or no environment`);
    }
    await lockDeploymentFeed(tx);
    await projectDeployment(tx, m, occurredAt);
    const kind = OUTCOME_KINDS[m.$typeName];
    const inventoryChanged = kind ? await projectOutcome(tx, envelope, m, kind, occurredAt) : false;
    await recordFeed(tx, {
      eventId: envelope.id,
      deploymentId: m.deploymentId,
      releaseId: m.releaseId,
      environment: m.environment,
      eventType: m.$typeName,
      environmentSequence: m.environmentSequence,
      occurredAt,
      inventoryChanged,
    });
  },
};
