import { fromJson, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { gateConditions, type LinkedChangeState, nextPhase } from "@rdm/domain-kernel/release";
import { instantOf } from "@rdm/proto";
import { ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import {
  ApprovalStatusSchema,
  LogEntryKindSchema,
  type Release,
  ReleasePhaseSchema,
  ReleaseSchema,
  ReviewOutcomeSchema,
  TaskStatusSchema,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { isUuid } from "@rdm/runtime/process";
import type pg from "pg";
import { enumName } from "../../../projections/enums.js";

export interface ReleaseRow {
  release_id: string;
  key: string;
  title: string;
  description: string;
  type: "MAJOR" | "MINOR" | "EMERGENCY";
  category: string;
  owner: string;
  coordinator: string;
  stakeholders: string[];
  risk: "UNSPECIFIED" | "LOW" | "MEDIUM" | "HIGH" | "CRITICAL";
  planned_start: Date | null;
  planned_end: Date | null;
  phase: string;
  registered_by: string;
  registered_at: Date;
  version: string;
  updated_at: Date;
  status: "ACTIVE" | "ABANDONED" | "CLOSED";
  phase_due_at: Date | null;
  snapshot: JsonValue | null;
  model: JsonValue | null;
  log_length: number;
  /** The release's log entries (protobuf JSON) in order; null when it has none. See releaseRows. */
  log: JsonValue[] | null;
}

/**
 * The release_view rows `source` selects (`SELECT * FROM release_view …`), each with its log's
 * entries (release_log_view, as many as its version holds), in the order `orderBy` gives.
 */
export const releaseRows = (source: string, orderBy = "") =>
  `SELECT v.*, (SELECT jsonb_agg(l.entry ORDER BY l.position) FROM release_log_view l
     WHERE l.release_id = v.release_id AND l.position < v.log_length) AS log
   FROM (${source}) v ${orderBy}`;

/** The release a row holds: its snapshot with its log. */
const releaseOf = (snapshot: JsonValue, log: JsonValue[] | null): Release =>
  fromJson(ReleaseSchema, log ? { ...(snapshot as JsonObject), log } : snapshot);

export interface HistoryRow {
  seq: string;
  release_id: string;
  version: string;
  event_type: string;
  occurred_at: Date;
  actor: string;
  reason: string;
  phase: string;
  event_id: string;
  correlation_id: string;
  causation_id: string;
  request_id: string;
}

const date = (t: Timestamp | undefined) => (t ? instantOf(t).toISOString() : null);
const phaseName = (p: number) => enumName(ReleasePhaseSchema, p);

const approvalsOf = (release: Release) =>
  release.approvals.map((a) => ({
    approvalId: a.approvalId,
    phase: phaseName(a.phase),
    phaseEntry: a.phaseEntry,
    approverGroup: a.approverGroup,
    quorum: a.quorum,
    requestedBy: a.requestedBy,
    requestedAt: date(a.requestedAt),
    status: enumName(ApprovalStatusSchema, a.status),
    votes: a.votes.map((v) => ({ approver: v.approver, approved: v.approved, comment: v.comment, at: date(v.at) })),
  }));

const tasksOf = (release: Release) =>
  release.tasks.map((t) => ({
    taskId: t.taskId,
    phase: phaseName(t.phase),
    phaseEntry: t.phaseEntry,
    name: t.name,
    required: t.required,
    fromModel: t.fromModel,
    assignee: t.assignee,
    status: enumName(TaskStatusSchema, t.status),
    dueAt: date(t.dueAt),
    overdue: t.overdue,
  }));

/** The lifecycle part of the overview, from the folded state and the change states the gateway knows. */
function lifecycle(row: ReleaseRow, changes: Map<string, string>, now: Date) {
  if (!row.snapshot || !row.model) return {};
  const release = releaseOf(row.snapshot, row.log);
  const model = fromJson(ReleaseModelSchema, row.model);
  const linked: LinkedChangeState[] = release.linkedChangeRequestIds.map((id) => ({
    changeRequestId: id,
    state: changes.get(id.toLowerCase()),
  }));
  const conditions = gateConditions({ release, model }, linked);
  const next = nextPhase(model, release.phase);
  return {
    abandonReason: release.abandonReason,
    modelName: release.modelName,
    modelVersion: release.modelVersion,
    phaseEntry: release.phaseEntry,
    phaseEnteredAt: date(release.phaseEnteredAt),
    phaseDueAt: row.phase_due_at,
    overdue: row.phase_due_at !== null && row.phase_due_at < now,
    gate: {
      phase: phaseName(release.phase),
      nextPhase: next === undefined ? null : phaseName(next),
      open: conditions.every((c) => c.met),
      conditions: conditions.map((c) => ({ rule: c.rule, subject: c.subject, description: c.description, met: c.met })),
    },
    approvals: approvalsOf(release),
    tasks: tasksOf(release),
    package: release.package.map((a) => ({
      artifactId: a.artifactId,
      name: a.name,
      version: a.version,
      sha256: a.sha256,
      configurationItemId: a.configurationItemId,
    })),
    packageFrozen: release.packageFrozen,
    linkedChangeRequests: linked.map((c) => ({ changeRequestId: c.changeRequestId, state: c.state ?? null })),
    deadlineMisses: release.deadlineMisses.map((m) => ({
      phase: phaseName(m.phase),
      phaseEntry: m.phaseEntry,
      dueAt: date(m.dueAt),
      escalated: m.escalated,
    })),
    backOutPlan: release.backOutPlan,
    log: release.log.map((e) => ({
      entryId: e.entryId,
      kind: enumName(LogEntryKindSchema, e.kind),
      text: e.text,
      recordedBy: e.recordedBy,
      recordedAt: date(e.recordedAt),
    })),
    review: release.review
      ? {
          outcome: enumName(ReviewOutcomeSchema, release.review.outcome),
          lessonsLearned: release.review.lessonsLearned,
          followUpActions: release.review.followUpActions,
          reviewedBy: release.review.reviewedBy,
          reviewedAt: date(release.review.reviewedAt),
        }
      : null,
  };
}

export const toRelease = (r: ReleaseRow, changes: Map<string, string> = new Map(), now = new Date()) => ({
  releaseId: r.release_id,
  key: r.key,
  title: r.title,
  description: r.description,
  type: r.type,
  category: r.category,
  owner: r.owner,
  coordinator: r.coordinator,
  stakeholders: r.stakeholders,
  risk: r.risk,
  plannedWindow: r.planned_start || r.planned_end ? { start: r.planned_start, end: r.planned_end } : null,
  phase: r.phase,
  registeredBy: r.registered_by,
  registeredAt: r.registered_at,
  version: Number(r.version),
  updatedAt: r.updated_at,
  status: r.status,
  ...lifecycle(r, changes, now),
});

export const toHistory = (h: HistoryRow) => ({
  seq: Number(h.seq),
  releaseId: h.release_id,
  version: Number(h.version),
  eventType: h.event_type,
  occurredAt: h.occurred_at,
  actor: h.actor,
  reason: h.reason,
  phase: h.phase,
  eventId: h.event_id,
  correlationId: h.correlation_id,
  causationId: h.causation_id,
  requestId: h.request_id,
});

/**
 * States of the linked change requests, from the gateway's change view (empty when unknown), by
 * lowercase id (a uuid column: compared as uuids, the look-up uses its index).
 */
export async function changeStates(pool: pg.Pool, rows: ReleaseRow[]): Promise<Map<string, string>> {
  const ids = rows.flatMap((r) =>
    r.snapshot ? fromJson(ReleaseSchema, r.snapshot).linkedChangeRequestIds.filter(isUuid) : [],
  );
  if (!ids.length) return new Map();
  const { rows: states } = await pool.query<{ id: string; state: string }>(
    "SELECT change_request_id::text AS id, state FROM change_view WHERE change_request_id = ANY($1::uuid[])",
    [ids],
  );
  return new Map(states.map((s) => [s.id, s.state]));
}

export async function findRelease(pool: pg.Pool, releaseId: string): Promise<ReleaseRow | undefined> {
  const { rows } = await pool.query<ReleaseRow>(releaseRows("SELECT * FROM release_view WHERE release_id = $1"), [
    releaseId,
  ]);
  return rows[0];
}

export async function historyOf(pool: pg.Pool, releaseId: string): Promise<HistoryRow[]> {
  const { rows } = await pool.query<HistoryRow>(
    "SELECT * FROM release_history WHERE release_id = $1 ORDER BY version",
    [releaseId],
  );
  return rows;
}

/** The newest seq of the audit trail (0: empty): where a stream without a resume point starts. */
export async function newestHistorySeq(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ max: string | null }>("SELECT max(seq) AS max FROM release_history");
  return Number(rows[0]?.max ?? 0);
}

/** Audit trail entries after `after`, of one release or all, as stream entries. */
export async function historyAfter(pool: pg.Pool, after: number, limit: number, releaseId?: string) {
  const args: unknown[] = [after, limit];
  let filter = "";
  if (releaseId) {
    args.push(releaseId);
    filter = "AND release_id = $3";
  }
  const { rows } = await pool.query<HistoryRow>(
    `SELECT * FROM release_history WHERE seq > $1 ${filter} ORDER BY seq LIMIT $2`,
    args,
  );
  return rows.map(toHistory).map((entry) => ({ seq: entry.seq, event: entry.eventType, data: entry }));
}
