import { BOOKED_STATES } from "@rdm/domain-kernel/change";
import { ChangeStateSchema } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import type pg from "pg";
import { enumName } from "../../../projections/enums.js";

export interface ChangeRow {
  change_request_id: string;
  key: string;
  type: string;
  state: string;
  title: string;
  description: string;
  justification: string;
  requester: string;
  affected_ci_ids: string[];
  environments: string[];
  implementation_plan: string;
  test_plan: string;
  backout_plan: string;
  impact: string;
  urgency: string;
  risk: string;
  board: string;
  required_approvals: number;
  approvals: unknown[];
  window_start: Date | null;
  window_end: Date | null;
  linked_release_id: string;
  template_id: string;
  assessment_notes: string;
  rejection_reason: string;
  overridden_freeze_ids: string[];
  freeze_override_justification: string;
  scheduling_collisions: unknown[];
  tasks: unknown[];
  failure_reason: string;
  review_outcome: string;
  review_notes: string;
  raised_at: Date;
  updated_at: Date;
  version: string;
}

export interface FreezeRow {
  freeze_window_id: string;
  name: string;
  reason: string;
  window_start: Date;
  window_end: Date;
  scope_all: boolean;
  scope_ci_ids: string[];
  scope_environments: string[];
  lifted: boolean;
  declared_by: string;
}

export interface CalendarReleaseRow {
  release_id: string;
  key: string;
  title: string;
  type: string;
  phase: string;
  owner: string;
  planned_start: Date;
  planned_end: Date;
}

export interface CollisionRow {
  change_request_id: string;
  key: string;
  state: string;
  window_start: Date;
  window_end: Date;
  ci_ids: string[];
}

export const toChange = (r: ChangeRow) => ({
  changeRequestId: r.change_request_id,
  key: r.key,
  type: r.type,
  state: r.state,
  title: r.title,
  description: r.description,
  justification: r.justification,
  requester: r.requester,
  affectedCiIds: r.affected_ci_ids,
  environments: r.environments,
  implementationPlan: r.implementation_plan,
  testPlan: r.test_plan,
  backoutPlan: r.backout_plan,
  impact: r.impact,
  urgency: r.urgency,
  risk: r.risk,
  board: r.board,
  requiredApprovals: r.required_approvals,
  approvals: r.approvals,
  window: r.window_start || r.window_end ? { start: r.window_start, end: r.window_end } : null,
  linkedReleaseId: r.linked_release_id,
  templateId: r.template_id,
  assessmentNotes: r.assessment_notes,
  rejectionReason: r.rejection_reason,
  overriddenFreezeIds: r.overridden_freeze_ids,
  freezeOverrideJustification: r.freeze_override_justification,
  schedulingCollisions: r.scheduling_collisions,
  tasks: r.tasks,
  failureReason: r.failure_reason,
  reviewOutcome: r.review_outcome,
  reviewNotes: r.review_notes,
  raisedAt: r.raised_at,
  updatedAt: r.updated_at,
  version: Number(r.version),
});

export const toFreezeWindow = (r: FreezeRow) => ({
  freezeWindowId: r.freeze_window_id,
  name: r.name,
  reason: r.reason,
  window: { start: r.window_start, end: r.window_end },
  scope: { all: r.scope_all, ciIds: r.scope_ci_ids, environments: r.scope_environments },
  lifted: r.lifted,
  declaredBy: r.declared_by,
});

export const toCalendarRelease = (r: CalendarReleaseRow) => ({
  releaseId: r.release_id,
  key: r.key,
  title: r.title,
  type: r.type,
  phase: r.phase,
  owner: r.owner,
  window: { start: r.planned_start, end: r.planned_end },
});

export const toCollision = (r: CollisionRow) => ({
  changeRequestId: r.change_request_id,
  key: r.key,
  state: r.state,
  window: { start: r.window_start, end: r.window_end },
  ciIds: r.ci_ids,
});

/** Changes whose window is booked on the calendar, the ones that can collide (the change service's rule). */
export const BOOKED = BOOKED_STATES.map((state) => enumName(ChangeStateSchema, state));

/**
 * A date-time query parameter as the Date the query takes: PostgreSQL refuses some strings the
 * schema's format admits (offsets beyond ±15:59, year 0000) but not the instants they name.
 */
export function parseDate(value: string): Date | undefined {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export function parseRange(from: string, to: string): { from: Date; to: Date } | string {
  const start = parseDate(from);
  const end = parseDate(to);
  if (!start || !end) return "from and to must be date-times";
  if (end <= start) return "to must be after from";
  return { from: start, to: end };
}

/** Everything on the calendar in [from, to): changes, active releases, freeze windows, collisions. */
export async function calendarOf(pool: pg.Pool, range: { from: Date; to: Date }) {
  const changes = await pool.query<ChangeRow>(
    `SELECT * FROM change_view WHERE window_start < $2 AND window_end > $1 AND state <> 'REJECTED'
     ORDER BY window_start, key`,
    [range.from, range.to],
  );
  // A release without a complete planned window has no place on the calendar (the comparisons
  // with NULL are not true); release_id only makes the order total (keys are not unique in the view).
  const releases = await pool.query<CalendarReleaseRow>(
    `SELECT release_id, key, title, type, phase, owner, planned_start, planned_end FROM release_view
     WHERE planned_start < $2 AND planned_end > $1 AND status = 'ACTIVE'
     ORDER BY planned_start, key, release_id`,
    [range.from, range.to],
  );
  const freezes = await pool.query<FreezeRow>(
    `SELECT * FROM freeze_window_view WHERE window_start < $2 AND window_end > $1 AND NOT lifted
     ORDER BY window_start, freeze_window_id`,
    [range.from, range.to],
  );
  // Each pair once, ordered by (key, id): keys are not unique in the view, and two changes with
  // the same key collide like any others.
  const pairs = await pool.query<{ a: CollisionRow; b: CollisionRow; ci_ids: string[] }>(
    `SELECT to_jsonb(a_row) AS a, to_jsonb(b_row) AS b,
            ARRAY(SELECT unnest(a.affected_ci_ids) INTERSECT SELECT unnest(b.affected_ci_ids) ORDER BY 1) AS ci_ids
     FROM change_view a JOIN change_view b ON (a.key, a.change_request_id) < (b.key, b.change_request_id)
       CROSS JOIN LATERAL (SELECT a.change_request_id, a.key, a.state, a.window_start, a.window_end) AS a_row
       CROSS JOIN LATERAL (SELECT b.change_request_id, b.key, b.state, b.window_start, b.window_end) AS b_row
     WHERE a.state = ANY($3) AND b.state = ANY($3)
       AND a.window_start < $2 AND a.window_end > $1 AND b.window_start < $2 AND b.window_end > $1
       AND a.window_start < b.window_end AND b.window_start < a.window_end
       AND a.affected_ci_ids && b.affected_ci_ids
     ORDER BY a.key, a.change_request_id, b.key, b.change_request_id`,
    [range.from, range.to, BOOKED],
  );
  return { changes, releases, freezes, pairs };
}
