import { DEPLOYMENT_EVENTS_TOPIC } from "@rdm/messaging";
import type pg from "pg";
import { feedsOwnRow, lockDeploymentFeed, recordFeed } from "../deployments/projection.js";
import { type ProjectedEvent, type Projection, versionGuard } from "../projection.js";
import { deploymentPlanMigrations } from "./migrations.js";
import { DEPLOYMENT_PLAN_EVENT_TYPES, type DeploymentPlan, evolvePlan } from "./plan.js";

type DeploymentPlanEvent = ProjectedEvent["message"] & {
  deploymentId: string;
  releaseId?: string;
  environment?: string;
};

/**
 * Each deployment's plan folded from its stream (evolvePlan), one row per deployment. Its events
 * share a partition (keyed by deployment id) and carry stream versions: an event at or below the
 * row's version was applied already. Events without a version (0) are applied as they come.
 */
async function applyPlanEvent(event: ProjectedEvent<DeploymentPlanEvent>, tx: pg.PoolClient): Promise<void> {
  const m = event.message;
  if (!m.deploymentId) return;
  // The begins' and outcomes' feed rows are the deployment view's, which took the lock before.
  const feeds = !feedsOwnRow(m.$typeName);
  if (feeds) await lockDeploymentFeed(tx);
  const { rows } = await tx.query<{ plan: DeploymentPlan; version: string }>(
    "SELECT plan, version FROM deployment_plan_view WHERE deployment_id = $1 FOR UPDATE",
    [m.deploymentId],
  );
  const current = rows[0];
  if (current && event.version > 0n && BigInt(current.version) >= event.version) return;
  const plan = evolvePlan(current?.plan, m, event.occurredAt);
  await tx.query(
    `INSERT INTO deployment_plan_view AS p (deployment_id, release_id, environment, status, window_start, window_end,
       plan, version, updated_at, first_event_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
     ON CONFLICT (deployment_id) DO UPDATE SET release_id = EXCLUDED.release_id, environment = EXCLUDED.environment,
       first_event_at = LEAST(p.first_event_at, EXCLUDED.first_event_at),
       status = EXCLUDED.status, window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
       plan = EXCLUDED.plan, version = GREATEST(p.version, EXCLUDED.version), updated_at = EXCLUDED.updated_at
     WHERE EXCLUDED.version = 0 OR ${versionGuard("p.version", 8)}`,
    [
      plan.deploymentId,
      plan.releaseId,
      plan.environment,
      plan.status,
      plan.window?.start ?? null,
      plan.window?.end ?? null,
      JSON.stringify(plan),
      event.version.toString(),
      event.occurredAt,
    ],
  );
  // Every event of a deployment is on its stream, named as its plan names it.
  if (!feeds) return;
  await recordFeed(tx, {
    eventId: event.envelope.id,
    deploymentId: plan.deploymentId,
    releaseId: plan.releaseId,
    environment: plan.environment,
    eventType: m.$typeName,
    // A rollback given up is numbered among the environment's outcomes; other events are not.
    environmentSequence: "environmentSequence" in m ? (m.environmentSequence as bigint) : 0n,
    occurredAt: event.occurredAt,
    inventoryChanged: false,
  });
}

/** Deployment plans and their progress, for the release overview, the calendar and the KPIs. */
export const deploymentPlanProjection: Projection<DeploymentPlanEvent> = {
  name: "gateway.deployment-plans",
  topic: DEPLOYMENT_EVENTS_TOPIC,
  handles: DEPLOYMENT_PLAN_EVENT_TYPES,
  migrations: deploymentPlanMigrations,
  apply: applyPlanEvent,
};
