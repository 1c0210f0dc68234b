import { equals } from "@bufbuild/protobuf";
import { instantOf } from "@rdm/proto";
import { type Deployment, DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentStepSchema, StepState } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type { Queryable } from "./tables.js";

const STATUS: Partial<Record<StepState, string>> = {
  [StepState.READY]: "READY",
  [StepState.CLAIMED]: "CLAIMED",
  [StepState.COMPLETED]: "COMPLETED",
  [StepState.FAILED]: "FAILED",
  [StepState.SKIPPED]: "SKIPPED",
};

const ENDED = new Set([StepState.COMPLETED, StepState.FAILED, StepState.SKIPPED]);

/**
 * Mirrors the deployment's reached steps into the queue, in the append's transaction. A claimed
 * step keeps the later of its recorded lease and the one heartbeats extended it to. A step the
 * service ended under its holder (a rollback, a cancellation: `told` lacks it, the holder's own
 * reports tell it as they end it) keeps that lease: its holder may still be at work on its
 * targets until a report after its work hears `step.ended` (endHeldLease) or the lease runs out,
 * and until then no step of its environment is handed out (lockNextStep): neither the
 * deployment's restore of those targets nor, after a rollback given up, the next deployment's.
 */
export async function syncStepQueue(
  tx: Queryable,
  deployment: Deployment,
  before: Deployment | undefined,
  requiredLabels: string[],
  told: ReadonlySet<number> = new Set(),
) {
  const isHeld = (d: Deployment | undefined) =>
    d ? d.paused || d.awaitingPromotion || d.state === DeploymentState.CANCELLED : false;
  const held = isHeld(deployment);
  for (const step of deployment.steps) {
    const status = STATUS[step.state];
    // Only rows this command changed: fewer row locks shared with concurrent commands.
    const previous = before?.steps[step.index];
    const unchanged = previous && equals(DeploymentStepSchema, previous, step) && isHeld(before) === held;
    if (!status || unchanged) continue;
    const holderAtWork = previous?.state === StepState.CLAIMED && ENDED.has(step.state) && !told.has(step.index);
    await tx.query(
      `INSERT INTO step_queue (deployment_id, step_index, environment, required_labels, status, held, available_at,
         fencing_token, lease_expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (deployment_id, step_index) DO UPDATE SET
         status = EXCLUDED.status, held = EXCLUDED.held, available_at = EXCLUDED.available_at,
         lease_expires_at = CASE
           WHEN $10 THEN step_queue.lease_expires_at
           WHEN EXCLUDED.status = 'CLAIMED' AND step_queue.fencing_token = EXCLUDED.fencing_token
             THEN GREATEST(step_queue.lease_expires_at, EXCLUDED.lease_expires_at)
           ELSE EXCLUDED.lease_expires_at END,
         fencing_token = EXCLUDED.fencing_token`,
      [
        deployment.deploymentId,
        step.index,
        deployment.environment,
        requiredLabels,
        status,
        held,
        instantOf(step.availableAt, null),
        step.fencingToken,
        step.state === StepState.CLAIMED ? instantOf(step.leaseExpiresAt, null) : null,
        holderAtWork,
      ],
    );
  }
}

export interface QueuedStep {
  deploymentId: string;
  stepIndex: number;
  /** The step was claimed, but its holder's lease ran out. */
  leaseExpired: boolean;
  /**
   * PostgreSQL's clock as the claim's transaction began: a lease is counted from it, as every
   * lease is judged and extended by it (the service's clock may be off).
   */
  now: Date;
}

/**
 * Locks the next step this executor may claim, skipping those other claimers hold locked, so
 * concurrent executors never get the same step: a waiting step from its available time, or a
 * claimed one whose lease expired; none in an environment where the holder of an ended step may
 * still be at work (see syncStepQueue).
 */
export async function lockNextStep(
  tx: Queryable,
  executor: { environments: string[]; labels: string[] },
): Promise<QueuedStep | undefined> {
  const { rows } = await tx.query<{ deployment_id: string; step_index: number; status: string; now: Date }>(
    `SELECT deployment_id, step_index, status, now() AS now FROM step_queue q
     WHERE NOT held
       AND ((status = 'READY' AND available_at <= now()) OR (status = 'CLAIMED' AND lease_expires_at < now()))
       AND (cardinality($1::text[]) = 0 OR environment = ANY($1))
       AND required_labels <@ $2::text[]
       AND NOT EXISTS (SELECT 1 FROM step_queue ended WHERE ended.environment = q.environment
                         AND ended.status IN ('COMPLETED', 'FAILED', 'SKIPPED') AND ended.lease_expires_at > now())
     ORDER BY available_at, deployment_id, step_index
     LIMIT 1 FOR UPDATE SKIP LOCKED`,
    [executor.environments, executor.labels],
  );
  const row = rows[0];
  return (
    row && {
      deploymentId: row.deployment_id,
      stepIndex: row.step_index,
      leaseExpired: row.status === "CLAIMED",
      now: row.now,
    }
  );
}

/**
 * Locks one claimed step whose lease ran out, skipping those a claimer or another sweeper holds:
 * the claim that takes it over, or the sweep that returns it to the queue, commits first.
 */
export async function lockLapsedLease(
  tx: Queryable,
): Promise<{ deploymentId: string; stepIndex: number; fencingToken: bigint } | undefined> {
  const { rows } = await tx.query<{ deployment_id: string; step_index: number; fencing_token: string }>(
    `SELECT deployment_id, step_index, fencing_token FROM step_queue
     WHERE status = 'CLAIMED' AND lease_expires_at < now()
     ORDER BY lease_expires_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
  );
  const row = rows[0];
  return row && { deploymentId: row.deployment_id, stepIndex: row.step_index, fencingToken: BigInt(row.fencing_token) };
}

/**
 * Whether the lease is still held (right token, not expired), and PostgreSQL's clock, by which it
 * was judged (the pauses a report sets are counted from it too); locks the row until the command
 * commits.
 */
export async function leaseIsLive(
  tx: Queryable,
  lease: { deploymentId: string; stepIndex: number; fencingToken: bigint },
): Promise<{ live: boolean; now: Date | undefined }> {
  const { rows } = await tx.query<{ live: boolean; now: Date }>(
    `SELECT status = 'CLAIMED' AND fencing_token = $3 AND lease_expires_at > now() AS live, now() AS now
     FROM step_queue WHERE deployment_id = $1 AND step_index = $2 FOR UPDATE`,
    [lease.deploymentId, lease.stepIndex, lease.fencingToken],
  );
  return { live: rows[0]?.live === true, now: rows[0]?.now };
}

/**
 * The holder of a step the service ended said it stopped (a report refused as `step.ended`): the
 * step holds its environment's next steps no more (see syncStepQueue).
 */
export async function endHeldLease(
  db: Queryable,
  lease: { deploymentId: string; stepIndex: number; fencingToken: bigint },
): Promise<void> {
  await db.query(
    `UPDATE step_queue SET lease_expires_at = NULL
     WHERE deployment_id = $1 AND step_index = $2 AND fencing_token = $3 AND status <> 'CLAIMED'
       AND lease_expires_at IS NOT NULL`,
    [lease.deploymentId, lease.stepIndex, lease.fencingToken],
  );
}

/** Extends a live lease; undefined when it was lost (expired or taken over). */
export async function extendLease(
  db: Queryable,
  lease: { deploymentId: string; stepIndex: number; fencingToken: bigint },
  seconds: number,
): Promise<Date | undefined> {
  const { rows } = await db.query<{ lease_expires_at: Date }>(
    `UPDATE step_queue SET lease_expires_at = now() + make_interval(secs => $4)
     WHERE deployment_id = $1 AND step_index = $2 AND fencing_token = $3 AND status = 'CLAIMED'
       AND lease_expires_at > now()
     RETURNING lease_expires_at`,
    [lease.deploymentId, lease.stepIndex, lease.fencingToken, seconds],
  );
  return rows[0]?.lease_expires_at;
}

/**
 * The stream id recorded with a claim's "nothing waiting" answer: it names no deployment, and
 * marks the answers `forgetIdleClaims` may delete.
 */
export const IDLE_CLAIM_STREAM = "";

/**
 * Deletes the recorded "nothing waiting" answers older than `before`. An idle executor polls
 * without end, each poll with a new request id; an answer is kept only as long as a retry of its
 * claim is plausible (a retry after that gets whatever waits then, as a new claim would).
 */
export async function forgetIdleClaims(db: Queryable, before: Date): Promise<number> {
  const { rowCount } = await db.query(`DELETE FROM command_results WHERE stream_id = $1 AND created_at < $2`, [
    IDLE_CLAIM_STREAM,
    before,
  ]);
  return rowCount ?? 0;
}
