import type pg from "pg";
import type { DeploymentPlan } from "../../../projections/deployment-plans/plan.js";
import {
  BOOKED,
  type CalendarReleaseRow,
  type ChangeRow,
  type CollisionRow,
  type FreezeRow,
} from "../changes/queries.js";
import type { CalendarChange, CalendarDeployment, CalendarFreeze } from "./conflicts.js";

export interface CalendarRange {
  from: Date;
  to: Date;
  /** Only what concerns this environment (changes naming none concern every environment). */
  environment?: string;
}

interface CalendarDeploymentRow {
  deployment_id: string;
  release_id: string;
  environment: string;
  status: string;
  window_start: Date;
  window_end: Date;
  plan: DeploymentPlan;
  release_key: string | null;
  /** The targets of the environment's blue and green groups, as its definition lists them (null: none heard of). */
  colour_ci_ids: string[] | null;
}

/** Everything on the calendar in [from, to): changes, active releases, deployments, freeze windows, change collisions. */
export async function calendarOf(pool: pg.Pool, range: CalendarRange) {
  const env = range.environment ?? null;
  const changes = await pool.query<ChangeRow>(
    // Rejected and cancelled changes never happen; nor does one closed after its rejection.
    `SELECT * FROM change_view WHERE window_start < $2 AND window_end > $1 AND state NOT IN ('REJECTED', 'CANCELLED')
       AND NOT (state = 'CLOSED' AND rejection_reason <> '')
       AND ($3::text IS NULL OR cardinality(environments) = 0 OR $3 = ANY(environments))
     ORDER BY window_start, key, change_request_id`,
    [range.from, range.to, env],
  );
  // A release without a complete planned window has no place on the calendar (the comparisons
  // with NULL are not true); release_id only makes the order total (keys are not unique in the view).
  const releases = await pool.query<CalendarReleaseRow>(
    `SELECT release_id, key, title, type, phase, owner, planned_start, planned_end FROM release_view
     WHERE planned_start < $2 AND planned_end > $1 AND status = 'ACTIVE'
     ORDER BY planned_start, key, release_id`,
    [range.from, range.to],
  );
  const deployments = await pool.query<CalendarDeploymentRow>(
    `SELECT p.*, r.key AS release_key,
       (SELECT array_agg(ci) FROM jsonb_array_elements(e.definition->'targetGroups') g,
          jsonb_array_elements_text(g->'ciIds') ci WHERE g->>'name' IN ('blue', 'green')) AS colour_ci_ids
     FROM deployment_plan_view p
       LEFT JOIN release_view r ON r.release_id::text = p.release_id
       LEFT JOIN environment_definition_view e ON e.environment = p.environment
     WHERE p.window_start < $2 AND p.window_end > $1 AND p.status <> 'CANCELLED'
       AND ($3::text IS NULL OR p.environment = $3)
     ORDER BY p.window_start, p.environment, p.deployment_id`,
    [range.from, range.to, env],
  );
  const freezes = await pool.query<FreezeRow>(
    `SELECT * FROM freeze_window_view WHERE window_start < $2 AND window_end > $1 AND NOT lifted
       AND ($3::text IS NULL OR scope_all OR cardinality(scope_environments) = 0 OR $3 = ANY(scope_environments))
     ORDER BY window_start, freeze_window_id`,
    [range.from, range.to, env],
  );
  return { changes: changes.rows, releases: releases.rows, deployments: deployments.rows, freezes: freezes.rows };
}

export const toCalendarDeployment = (r: CalendarDeploymentRow) => ({
  deploymentId: r.deployment_id,
  releaseId: r.release_id,
  releaseKey: r.release_key,
  environment: r.environment,
  state: r.status,
  strategy: r.plan.strategy,
  window: { start: r.window_start, end: r.window_end },
  linkedChangeIds: r.plan.linkedChangeIds,
  changeRequestIds: r.plan.changeRequestIds ?? [],
});

/** The rows as the conflict rules see them. */
export function conflictInputs(rows: Awaited<ReturnType<typeof calendarOf>>) {
  const changes: CalendarChange[] = rows.changes.map((c) => ({
    id: c.change_request_id,
    key: c.key,
    booked: BOOKED.includes(c.state),
    window: { start: c.window_start as Date, end: c.window_end as Date },
    ciIds: c.affected_ci_ids,
    environments: c.environments,
    overriddenFreezeIds: c.overridden_freeze_ids,
    linkedReleaseId: c.linked_release_id,
  }));
  const deployments: CalendarDeployment[] = rows.deployments.map((d) => ({
    id: d.deployment_id,
    releaseId: d.release_id,
    environment: d.environment,
    window: { start: d.window_start, end: d.window_end },
    // The CIs its steps touch; blue/green: both colours, as its switch moves traffic off the live one.
    ciIds: [
      ...new Set([
        ...d.plan.steps.flatMap((s) => s.targetCiIds),
        ...(d.plan.strategy === "BLUE_GREEN" ? (d.colour_ci_ids ?? []) : []),
      ]),
    ],
    // The changes it implements: those of its plan and those its start checked (as it began).
    implementedChangeIds: [...d.plan.linkedChangeIds, ...(d.plan.changeRequestIds ?? [])],
    overriddenFreezeIds: d.plan.overriddenFreezeWindowIds ?? [],
  }));
  const freezes: CalendarFreeze[] = rows.freezes.map((f) => ({
    id: f.freeze_window_id,
    name: f.name,
    window: { start: f.window_start, end: f.window_end },
    all: f.scope_all,
    ciIds: f.scope_ci_ids,
    environments: f.scope_environments,
  }));
  return { changes, deployments, freezes };
}

/** The change pairs of the CHANGE_CHANGE conflicts, in the shape the change calendar always had. */
export function changeCollisions(rows: ChangeRow[], pairs: { a: string; b: string; ciIds: string[] }[]) {
  const byId = new Map(rows.map((r) => [r.change_request_id, r]));
  const collision = (r: ChangeRow, ciIds: string[]): CollisionRow => ({
    change_request_id: r.change_request_id,
    key: r.key,
    state: r.state,
    window_start: r.window_start as Date,
    window_end: r.window_end as Date,
    ci_ids: ciIds,
  });
  return pairs.flatMap((p) => {
    const a = byId.get(p.a);
    const b = byId.get(p.b);
    return a && b ? [{ a: collision(a, p.ciIds), b: collision(b, p.ciIds), ciIds: p.ciIds }] : [];
  });
}
