import { BOOKED_STATES } from "@rdm/domain-kernel/change";
import { ChangeStateSchema } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
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
  cancellation_reason: string;
  cancelled_by: string;
  awaiting_tasks_deployment_id: string;
  awaiting_tasks_environment: string;
  implemented_by_deployment_id: string;
  implemented_environments: string[];
  first_commit_time: Date | null;
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
  cancellationReason: r.cancellation_reason,
  cancelledBy: r.cancelled_by,
  awaitingTasksDeploymentId: r.awaiting_tasks_deployment_id,
  awaitingTasksEnvironment: r.awaiting_tasks_environment,
  implementedByDeploymentId: r.implemented_by_deployment_id,
  implementedEnvironments: r.implemented_environments,
  firstCommitTime: r.first_commit_time,
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
 * A date-time query parameter as the Date the query takes, undefined if it names no instant in
 * the years 0001..9999 (UTC), the range every instant of the platform is in: the schema's format
 * admits offsets beyond ±15:59, which PostgreSQL refuses as strings, and year 0000, which names
 * an instant of 1 BC.
 */
export function parseDate(value: string): Date | undefined {
  const date = new Date(value);
  const year = date.getUTCFullYear();
  return Number.isNaN(date.getTime()) || year < 1 || year > 9999 ? undefined : date;
}

/** The longest calendar range, in days: a year, a leap one too (its conflicts are found pairwise). */
export const MAX_RANGE_DAYS = 366;

export function parseRange(from: string, to: string): { from: Date; to: Date } | string {
  const start = parseDate(from);
  const end = parseDate(to);
  if (!start || !end) return "from and to must be date-times in the years 0001 to 9999";
  if (end <= start) return "to must be after from";
  if (end.getTime() - start.getTime() > MAX_RANGE_DAYS * 86_400_000)
    return `the range may span at most ${MAX_RANGE_DAYS} days; ask for a year at a time`;
  return { from: start, to: end };
}
