import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { instantOf } from "@rdm/proto";
import {
  ApprovalStatus,
  type Release,
  ReleasePhaseSchema,
  ReleaseSchema,
  ReviewOutcome,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import type { DeploymentFact, ReleaseFact } from "../../../kpis/compute.js";
import { enumName } from "../../../projections/enums.js";

const OUTCOME_TYPES = {
  succeeded: "rdm.deployment.v1.DeploymentSucceeded",
  failed: "rdm.deployment.v1.DeploymentFailed",
  rolledBack: "rdm.deployment.v1.DeploymentRolledBack",
};
const NEEDED_FIX = new Set([ReviewOutcome.PARTIALLY_SUCCESSFUL, ReviewOutcome.FAILED, ReviewOutcome.BACKED_OUT]);

interface OutcomeRow {
  deployment_id: string;
  release_id: string;
  succeeded_at: Date | null;
  failed_at: Date | null;
  rolled_back_at: Date | null;
  target_ci_ids: string[] | null;
}

/**
 * Every deployment of the environment with its outcome times, from the deployment events in the
 * audit trail (the first event of each outcome type counts), and the CIs its artifacts targeted.
 */
async function deploymentOutcomes(pool: pg.Pool, environment: string): Promise<OutcomeRow[]> {
  const { rows } = await pool.query<OutcomeRow>(
    `SELECT a.deployment_id, max(a.release_id) AS release_id,
       min(a.occurred_at) FILTER (WHERE a.event_type = $2) AS succeeded_at,
       min(a.occurred_at) FILTER (WHERE a.event_type = $3) AS failed_at,
       min(a.occurred_at) FILTER (WHERE a.event_type = $4) AS rolled_back_at,
       (SELECT array_agg(DISTINCT t) FROM deployment_view d, jsonb_array_elements(d.artifacts) x,
          jsonb_array_elements_text(x->'targetCiIds') t WHERE d.deployment_id = a.deployment_id) AS target_ci_ids
     FROM audit_event a
     WHERE a.source = 'deployment' AND a.event_type = ANY(ARRAY[$2, $3, $4]) AND $1 = ANY(a.environments)
     GROUP BY a.deployment_id`,
    [environment, OUTCOME_TYPES.succeeded, OUTCOME_TYPES.failed, OUTCOME_TYPES.rolledBack],
  );
  return rows;
}

/**
 * The earliest first commit time of each release's linked changes, from the changes projection
 * (the release's own list of links); a cancelled change ships nothing, so it does not count.
 */
async function firstCommits(pool: pg.Pool, linked: Map<string, string[]>): Promise<Map<string, Date>> {
  const { rows } = await pool.query<{ release_id: string; first_commit_at: Date }>(
    `SELECT l.release_id, min(c.first_commit_time) AS first_commit_at
     FROM unnest($1::text[], $2::text[]) AS l(release_id, change_request_id)
     JOIN change_view c ON c.change_request_id::text = lower(l.change_request_id)
     WHERE c.first_commit_time IS NOT NULL AND c.state <> 'CANCELLED'
     GROUP BY l.release_id`,
    [
      [...linked].flatMap(([releaseId, changes]) => changes.map(() => releaseId)),
      [...linked].flatMap(([, changes]) => changes),
    ],
  );
  return new Map(rows.map((r) => [r.release_id, r.first_commit_at]));
}

/** A release's facts from its folded state: package CIs, approvals with their decisions, deadline misses, review. */
function releaseFact(releaseId: string, registeredAt: Date, r: Release, firstCommitAt: Date | null): ReleaseFact {
  return {
    releaseId,
    registeredAt,
    firstCommitAt,
    plannedEnd: instantOf(r.plannedWindow?.end, null),
    services: [...new Set(r.package.map((a) => a.configurationItemId).filter(Boolean))],
    neededFix: r.review !== undefined && NEEDED_FIX.has(r.review.outcome),
    approvals: r.approvals.flatMap((a) => {
      if (!a.requestedAt) return [];
      const decided = a.status === ApprovalStatus.APPROVED || a.status === ApprovalStatus.REJECTED;
      const votes = a.votes.flatMap((v) => (v.at ? [instantOf(v.at)] : []));
      const decidedAt = decided && votes.length ? new Date(Math.max(...votes.map((v) => v.getTime()))) : null;
      return [{ requestedAt: instantOf(a.requestedAt), decidedAt }];
    }),
    deadlineMisses: r.deadlineMisses.flatMap((m) =>
      m.dueAt
        ? [{ phase: enumName(ReleasePhaseSchema, m.phase), dueAt: instantOf(m.dueAt), escalated: m.escalated }]
        : [],
    ),
  };
}

/**
 * The facts the KPIs of one environment and period are computed from: every deployment of the
 * environment, and the releases that changed since the period began or that those deployments deployed.
 */
export async function kpiFacts(pool: pg.Pool, environment: string, from: Date) {
  const outcomes = await deploymentOutcomes(pool, environment);
  const { rows } = await pool.query<{ release_id: string; registered_at: Date; snapshot: JsonValue }>(
    `SELECT release_id, registered_at, snapshot FROM release_view
     WHERE snapshot IS NOT NULL AND (updated_at >= $1 OR release_id::text = ANY($2))`,
    [from, outcomes.map((o) => o.release_id)],
  );
  const folded = rows.map((r) => ({ row: r, release: fromJson(ReleaseSchema, r.snapshot) }));
  const commits = await firstCommits(
    pool,
    new Map(folded.map(({ row, release }) => [row.release_id, release.linkedChangeRequestIds])),
  );
  const releases = folded.map(({ row, release }) =>
    releaseFact(row.release_id, row.registered_at, release, commits.get(row.release_id) ?? null),
  );
  const packageCis = new Map(releases.map((r) => [r.releaseId, r.services]));
  const deployments: DeploymentFact[] = outcomes.map((o) => ({
    deploymentId: o.deployment_id,
    releaseId: o.release_id,
    environment,
    services: [...new Set([...(o.target_ci_ids ?? []), ...(packageCis.get(o.release_id) ?? [])])],
    succeededAt: o.succeeded_at,
    failedAt: o.failed_at,
    rolledBackAt: o.rolled_back_at,
  }));
  return { deployments, releases };
}

/**
 * Whether a KPI's `service` names a configuration item the gateway has heard of: one in the CMDB,
 * one a deployment's artifacts targeted, or one a release's package maps an artifact to (ids
 * compared without case, as the deployment gates compare targets).
 */
export async function knownService(pool: pg.Pool, ciId: string): Promise<boolean> {
  const { rows } = await pool.query<{ known: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM cmdb_ci_view WHERE ci_id = lower($1))
       OR EXISTS (SELECT 1 FROM deployment_view d, jsonb_array_elements(d.artifacts) x,
                    jsonb_array_elements_text(x->'targetCiIds') t WHERE lower(t) = lower($1))
       OR EXISTS (SELECT 1 FROM release_view r, jsonb_array_elements(r.snapshot->'package') p
                  WHERE lower(p->>'configurationItemId') = lower($1))
       AS known`,
    [ciId],
  );
  return rows[0]?.known ?? false;
}
