import type pg from "pg";
import { type DeploymentPlan, progressOf } from "../../../projections/deployment-plans/plan.js";
import type { EnvironmentDefinition } from "../../../projections/environments/projection.js";
import { equalityFilters } from "../../problems.js";
import type { StreamEntry } from "../../sse.js";

/** An artifact as the deployment view stores it (JSON); a type, so it fits the schema's open objects. */
type ArtifactJson = { artifactId: string; name: string; version: string; targetCiIds: string[] };

export interface DeploymentRow {
  deployment_id: string;
  release_id: string;
  environment: string;
  /** The state its newest outcome event gave (the listed state is the plan's, from every event). */
  state: "IN_PROGRESS" | "SUCCEEDED" | "FAILED" | "ROLLED_BACK";
  strategy: string;
  artifacts: ArtifactJson[];
  restored_artifacts: ArtifactJson[] | null;
  failure_reason: string;
  failed_target_ci_ids: string[];
  rollback_reason: string;
  first_event_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  rolled_back_at: Date | null;
  updated_at: Date;
}

/** A listed deployment: its plan, which every event of it moves, and its outcome columns (null before any). */
export type ListedDeploymentRow = { [K in keyof DeploymentRow]: DeploymentRow[K] | null } & {
  plan: DeploymentPlan;
  listed_at: Date;
  plan_updated_at: Date;
};

/**
 * Every deployment from its first event on, planned or finished: the plan view has a row for each
 * (it takes every event that names a deployment), the outcome view adds what the outcomes said.
 */
export const LISTED_DEPLOYMENTS = `SELECT d.*, p.plan, p.first_event_at AS listed_at, p.updated_at AS plan_updated_at
  FROM deployment_plan_view p LEFT JOIN deployment_view d ON d.deployment_id = p.deployment_id`;

export function toListedDeployment(r: ListedDeploymentRow) {
  const { plan } = r;
  const later = r.updated_at && r.updated_at > r.plan_updated_at ? r.updated_at : r.plan_updated_at;
  return {
    deploymentId: plan.deploymentId,
    releaseId: plan.releaseId || r.release_id || "",
    environment: plan.environment || r.environment || "",
    state: plan.status,
    paused: plan.paused ?? false,
    awaitingPromotion: plan.awaitingPromotion ?? false,
    strategy: plan.strategy || r.strategy || "",
    window: plan.window,
    linkedChangeIds: plan.linkedChangeIds,
    approvals: { required: plan.requiredApprovals, granted: plan.approvals.length, group: plan.approvalGroup },
    progress: progressOf(plan),
    artifacts: r.artifacts ?? plan.artifacts ?? [],
    restoredArtifacts: r.restored_artifacts,
    reason: plan.reason,
    failureReason: r.failure_reason ?? "",
    failedTargetCiIds: r.failed_target_ci_ids ?? [],
    rollbackReason: r.rollback_reason ?? "",
    plannedAt: plan.plannedAt,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    rolledBackAt: r.rolled_back_at,
    updatedAt: later,
  };
}

/** A listed deployment with its steps and rollback: the detail route and the release overview. */
export const toDeploymentDetail = (r: ListedDeploymentRow) => ({
  ...toListedDeployment(r),
  steps: r.plan.steps,
  rollback: r.plan.rollback && { abandoned: null, ...r.plan.rollback },
});

/** The deployments of one release, newest first (the release overview shows them per environment). */
export async function deploymentsOfRelease(pool: pg.Pool, releaseId: string) {
  const { rows } = await pool.query<ListedDeploymentRow>(
    `${LISTED_DEPLOYMENTS} WHERE p.release_id = $1 ORDER BY p.first_event_at DESC, p.deployment_id DESC`,
    [releaseId.toLowerCase()],
  );
  return rows.map(toListedDeployment);
}

/** Whether the gateway has projected the release. */
export async function releaseKnown(pool: pg.Pool, releaseId: string): Promise<boolean> {
  const { rowCount } = await pool.query("SELECT 1 FROM release_view WHERE release_id = $1", [releaseId.toLowerCase()]);
  return rowCount === 1;
}

interface EnvironmentRow {
  environment: string;
  health: "HEALTHY" | "DEGRADED";
  last_deployment_id: string;
  last_release_id: string;
  last_outcome: "SUCCEEDED" | "FAILED" | "ROLLED_BACK";
  last_environment_sequence: string;
  updated_at: Date;
  live_colour: string;
}

/** An environment defined by the deployment service, or with a deployment outcome, or both. */
export type KnownEnvironmentRow = { [K in keyof EnvironmentRow]: EnvironmentRow[K] | null } & {
  name: string;
  definition: EnvironmentDefinition | null;
  promotion_rank: number | null;
  production: boolean | null;
  retired_targets: string[];
};

/**
 * Whether an environment is production, as the deployment service decides it: its definition's
 * flag, else whether no defined environment promotes from it (SQL over the environment's name and
 * definition; one without a definition is production).
 */
export const productionSql = (name: string, definition: string) =>
  `COALESCE((${definition}->>'production')::boolean,
     NOT EXISTS (SELECT 1 FROM environment_definition_view o WHERE o.definition->>'promotesFrom' = ${name}))`;

/**
 * The definition's targets that the CMDB view lists as retired, as the definition spells them (the
 * deployment service compares target ids without case and refuses to deploy to these).
 */
const RETIRED_TARGETS = `ARRAY(SELECT DISTINCT t.ci_id
    FROM jsonb_array_elements(d.definition->'targetGroups') g, jsonb_array_elements_text(g->'ciIds') t(ci_id)
    JOIN cmdb_ci_view c ON c.ci_id = lower(t.ci_id) AND c.status = 'RETIRED'
    ORDER BY t.ci_id)`;

/** Every environment the gateway knows, in promotion order. */
export const KNOWN_ENVIRONMENTS = `SELECT v.*, COALESCE(d.environment, v.environment) AS name, d.definition, d.promotion_rank,
    ${productionSql("COALESCE(d.environment, v.environment)", "d.definition")} AS production,
    ${RETIRED_TARGETS} AS retired_targets
  FROM environment_definition_view d FULL JOIN environment_view v ON v.environment = d.environment`;

/** The environment of that name the gateway knows of (defined, or deployed to), if any. */
export async function knownEnvironment(db: pg.Pool, name: string): Promise<KnownEnvironmentRow | undefined> {
  const { rows } = await db.query<KnownEnvironmentRow>(
    `${KNOWN_ENVIRONMENTS} WHERE COALESCE(d.environment, v.environment) = $1`,
    [name],
  );
  return rows[0];
}

export const unknownEnvironment = (name: string) => `environment ${name} is neither defined nor deployed to`;

export const toKnownEnvironment = (r: KnownEnvironmentRow) => ({
  environment: r.name,
  definition: r.definition && { ...r.definition, production: r.production ?? false },
  health: r.health,
  lastDeploymentId: r.last_deployment_id,
  lastReleaseId: r.last_release_id,
  lastOutcome: r.last_outcome,
  lastEnvironmentSequence: r.last_environment_sequence === null ? null : Number(r.last_environment_sequence),
  updatedAt: r.updated_at,
  liveColour: r.live_colour || null,
  retiredTargetCiIds: r.retired_targets,
});

interface FeedRow {
  seq: string;
  event_type: string;
  deployment_id: string;
  release_id: string;
  environment: string;
  environment_sequence: string;
  occurred_at: Date;
}

/** The newest seq of the deployment feed (0: empty): where a stream without a resume point starts. */
export async function newestFeedSeq(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ max: string | null }>("SELECT max(seq) AS max FROM deployment_feed");
  return Number(rows[0]?.max ?? 0);
}

/** Deployment events after `after`, filtered by release, environment, or to inventory changes. */
export async function feedAfter(
  pool: pg.Pool,
  after: number,
  limit: number,
  filters: { releaseId?: string; environment?: string; inventoryChanged?: boolean },
): Promise<StreamEntry[]> {
  const where = ["seq > $1"];
  const args: unknown[] = [after, limit];
  const filter = (column: string, value: unknown) => {
    if (value === undefined) return;
    args.push(value);
    where.push(`${column} = $${args.length}`);
  };
  filter("release_id", filters.releaseId?.toLowerCase());
  filter("environment", filters.environment);
  filter("inventory_changed", filters.inventoryChanged);
  const { rows } = await pool.query<FeedRow>(
    `SELECT * FROM deployment_feed WHERE ${where.join(" AND ")} ORDER BY seq LIMIT $2`,
    args,
  );
  return rows.map((r) => ({
    seq: Number(r.seq),
    event: r.event_type,
    data: {
      seq: Number(r.seq),
      eventType: r.event_type,
      deploymentId: r.deployment_id,
      releaseId: r.release_id,
      environment: r.environment,
      environmentSequence: Number(r.environment_sequence),
      occurredAt: r.occurred_at,
    },
  }));
}

interface InventoryEntryRow {
  environment: string;
  target_ci_id: string;
  target_name: string | null;
  target_status: string | null;
  artifact_name: string;
  artifact_version: string;
  artifact_id: string;
  since: Date;
  deployment_id: string;
  release_id: string;
  release_key: string | null;
  via: string;
}

/**
 * The inventory entries the filters name (every environment's when none), by environment, target
 * and artifact, with the target's name and lifecycle status and the release's key where the gateway
 * knows them.
 */
export async function inventoryEntries(
  pool: pg.Pool,
  filters: { environment?: string | undefined; targetCiId?: string | undefined; artifactName?: string | undefined },
) {
  const { where, args } = equalityFilters({
    "i.environment": filters.environment,
    // Without case, as the deployment gates compare targets.
    "lower(i.target_ci_id)": filters.targetCiId?.toLowerCase(),
    "i.artifact_name": filters.artifactName,
  });
  const { rows } = await pool.query<InventoryEntryRow>(
    `SELECT i.*, c.name AS target_name, c.status AS target_status, r.key AS release_key
       FROM environment_inventory_view i
       LEFT JOIN cmdb_ci_view c ON c.ci_id = lower(i.target_ci_id)
       LEFT JOIN release_view r ON r.release_id::text = i.release_id
     ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
     ORDER BY i.environment, i.target_ci_id, i.artifact_name`,
    args,
  );
  return rows;
}

export const toInventoryEntry = (r: InventoryEntryRow) => ({
  targetCiId: r.target_ci_id,
  targetName: r.target_name,
  targetStatus: r.target_status,
  artifactName: r.artifact_name,
  artifactVersion: r.artifact_version,
  artifactId: r.artifact_id,
  since: r.since,
  deploymentId: r.deployment_id,
  releaseId: r.release_id,
  releaseKey: r.release_key,
  via: r.via,
});
