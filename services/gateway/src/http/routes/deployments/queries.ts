import type pg from "pg";
import type { StreamEntry } from "../../sse.js";

/** An artifact as the deployment view stores it (JSON); a type, so it fits the schema's open objects. */
type ArtifactJson = { artifactId: string; name: string; version: string; targetCiIds: string[] };

export interface DeploymentRow {
  deployment_id: string;
  release_id: string;
  environment: string;
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

export const toDeployment = (r: DeploymentRow) => ({
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
    [releaseId.toLowerCase()],
  );
  return rows.map(toDeployment);
}

export interface EnvironmentRow {
  environment: string;
  health: "HEALTHY" | "DEGRADED";
  last_deployment_id: string;
  last_release_id: string;
  last_outcome: "SUCCEEDED" | "FAILED" | "ROLLED_BACK";
  last_environment_sequence: string;
  updated_at: Date;
}

export const toEnvironment = (r: EnvironmentRow) => ({
  environment: r.environment,
  health: r.health,
  lastDeploymentId: r.last_deployment_id,
  lastReleaseId: r.last_release_id,
  lastOutcome: r.last_outcome,
  lastEnvironmentSequence: Number(r.last_environment_sequence),
  updatedAt: r.updated_at,
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
