import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { boardFor, type ChangeRequestEvent, type ChangeServiceEvent } from "@rdm/domain-kernel/change";
import { CHANGE_EVENTS_TOPIC } from "@rdm/messaging";
import { instantOf } from "@rdm/proto";
import {
  ApprovalDecisionSchema,
  ChangeBoardSchema,
  type ChangeCollision,
  ChangeImpactSchema,
  ChangeReviewOutcomeSchema,
  ChangeRiskSchema,
  ChangeStateSchema,
  ChangeTypeSchema,
  ChangeUrgencySchema,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  type ChangeRequestRaised,
  type FreezeWindowDeclared,
  file_rdm_change_v1_events,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";
import { enumName as name } from "../enums.js";
import { type ProjectedEvent, type Projection, versionGuard } from "../projection.js";
import { changeProjectionMigrations } from "./migrations.js";

const date = (value: Timestamp | undefined) => instantOf(value, null);
const windowStart = (w: TimeWindow | undefined) => date(w?.start);
const windowEnd = (w: TimeWindow | undefined) => date(w?.end);
const collisionJson = (collisions: ChangeCollision[]) =>
  JSON.stringify(
    collisions.map((c) => ({
      changeRequestId: c.changeRequestId,
      key: c.key,
      state: name(ChangeStateSchema, c.state),
      window: { start: windowStart(c.window), end: windowEnd(c.window) },
      ciIds: c.ciIds,
    })),
  );

async function insertRaised(event: ProjectedEvent<ChangeRequestRaised>, tx: pg.PoolClient): Promise<void> {
  const m = event.message;
  await tx.query(
    `INSERT INTO change_view (change_request_id, key, type, state, title, description, justification, requester,
       affected_ci_ids, environments, implementation_plan, test_plan, backout_plan, impact, urgency, risk, board,
       window_start, window_end, linked_release_id, template_id, raised_at, updated_at, version, first_commit_time)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$22,$23,$24)
     ON CONFLICT (change_request_id) DO NOTHING`,
    [
      m.changeRequestId,
      m.key,
      name(ChangeTypeSchema, m.type),
      name(ChangeStateSchema, m.state),
      m.title,
      m.description,
      m.justification,
      m.requester,
      m.affectedCiIds,
      m.environments,
      m.implementationPlan,
      m.testPlan,
      m.backoutPlan,
      name(ChangeImpactSchema, m.impact),
      name(ChangeUrgencySchema, m.urgency),
      name(ChangeRiskSchema, m.risk),
      name(ChangeBoardSchema, boardFor(m.type)),
      windowStart(m.plannedWindow),
      windowEnd(m.plannedWindow),
      m.linkedReleaseId,
      m.templateId,
      event.occurredAt,
      event.version.toString(),
      date(m.firstCommitTime),
    ],
  );
}

async function insertFreezeWindow(event: ProjectedEvent<FreezeWindowDeclared>, tx: pg.PoolClient): Promise<void> {
  const m = event.message;
  await tx.query(
    `INSERT INTO freeze_window_view (freeze_window_id, name, reason, window_start, window_end, scope_all,
       scope_ci_ids, scope_environments, lifted, declared_by, version)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,false,$9,$10) ON CONFLICT (freeze_window_id) DO NOTHING`,
    [
      m.freezeWindowId,
      m.name,
      m.reason,
      windowStart(m.window),
      windowEnd(m.window),
      m.scope?.all ?? false,
      m.scope?.ciIds ?? [],
      m.scope?.environments ?? [],
      event.actor,
      event.version.toString(),
    ],
  );
}

type SetColumn = (column: string, value: unknown, cast?: string) => void;
type SetColumnSql = (column: string, sql: (param: (value: unknown) => string) => string) => void;

/** The columns an event changes beyond state and linked release. */
function setChangedFields(m: ChangeRequestEvent, at: Date, set: SetColumn, setSql: SetColumnSql): void {
  switch (m.$typeName) {
    case "rdm.change.v1.ChangeRequestDetailsUpdated":
      set("title", m.title);
      set("description", m.description);
      set("justification", m.justification);
      set("affected_ci_ids", m.affectedCiIds);
      set("environments", m.environments);
      set("implementation_plan", m.implementationPlan);
      set("test_plan", m.testPlan);
      set("backout_plan", m.backoutPlan);
      set("impact", name(ChangeImpactSchema, m.impact));
      set("urgency", name(ChangeUrgencySchema, m.urgency));
      set("risk", name(ChangeRiskSchema, m.risk));
      set("window_start", windowStart(m.plannedWindow));
      set("window_end", windowEnd(m.plannedWindow));
      set("first_commit_time", date(m.firstCommitTime));
      break;
    case "rdm.change.v1.ChangeRequestAssessed":
      set("impact", name(ChangeImpactSchema, m.impact));
      set("urgency", name(ChangeUrgencySchema, m.urgency));
      set("risk", name(ChangeRiskSchema, m.risk));
      set("board", name(ChangeBoardSchema, m.board));
      set("required_approvals", m.requiredApprovals);
      set("assessment_notes", m.notes);
      break;
    case "rdm.change.v1.ChangeApprovalRecorded":
      setSql(
        "approvals",
        (p) =>
          `approvals || jsonb_build_array(jsonb_build_object('approver', ${p(m.approver)}::text, 'decision', ${p(
            name(ApprovalDecisionSchema, m.decision),
          )}::text, 'comment', ${p(m.comment)}::text, 'decidedAt', ${p(at.toISOString())}::text))`,
      );
      break;
    case "rdm.change.v1.ChangeRequestRejected":
      set("rejection_reason", m.reason);
      break;
    case "rdm.change.v1.ChangeRequestScheduled":
      set("window_start", windowStart(m.window));
      set("window_end", windowEnd(m.window));
      set("overridden_freeze_ids", m.overriddenFreezeIds);
      set("freeze_override_justification", m.freezeOverrideJustification);
      set("scheduling_collisions", collisionJson(m.collisions), "::jsonb");
      break;
    case "rdm.change.v1.ChangeRequestFailed":
      set("failure_reason", m.reason);
      break;
    case "rdm.change.v1.ChangeRequestCancelled":
      // The state (CANCELLED) takes it off the calendar and out of every collision.
      set("cancellation_reason", m.reason);
      set("cancelled_by", m.cancelledBy);
      break;
    case "rdm.change.v1.ChangeRequestReviewed":
      set("review_outcome", name(ChangeReviewOutcomeSchema, m.outcome));
      set("review_notes", m.notes);
      break;
    case "rdm.change.v1.ChangeTaskAdded":
      setSql(
        "tasks",
        (p) =>
          `tasks || jsonb_build_array(jsonb_build_object('taskId', ${p(m.taskId)}::text, 'title', ${p(
            m.title,
          )}::text, 'assignee', ${p(m.assignee)}::text, 'state', 'OPEN', 'completedBy', ''))`,
      );
      break;
    case "rdm.change.v1.ChangeTaskCompleted":
      setSql(
        "tasks",
        (p) =>
          `(SELECT coalesce(jsonb_agg(CASE WHEN t->>'taskId' = ${p(m.taskId)}::text
           THEN t || jsonb_build_object('state', 'DONE', 'completedBy', ${p(m.completedBy)}::text) ELSE t END), '[]')
          FROM jsonb_array_elements(tasks) AS t)`,
      );
      break;
    default:
      break;
  }
}

/**
 * The deployments of the change: the one whose success it awaits its tasks for, none once it
 * leaves IMPLEMENTING (implemented or failed); the one that implemented it.
 */
function setDeployments(m: ChangeRequestEvent, set: SetColumn, setSql: SetColumnSql): void {
  if (m.$typeName === "rdm.change.v1.ChangeRequestImplemented") set("implemented_by_deployment_id", m.deploymentId);
  if (m.$typeName === "rdm.change.v1.ChangeRequestEnvironmentImplemented")
    setSql("implemented_environments", (p) => `array_append(implemented_environments, ${p(m.environment)}::text)`);
  const awaiting = m.$typeName === "rdm.change.v1.ChangeRequestImplementationAwaitingTasks" ? m : undefined;
  if (
    awaiting ||
    m.$typeName === "rdm.change.v1.ChangeRequestImplemented" ||
    m.$typeName === "rdm.change.v1.ChangeRequestFailed"
  ) {
    set("awaiting_tasks_deployment_id", awaiting?.deploymentId ?? "");
    set("awaiting_tasks_environment", awaiting?.environment ?? "");
  }
}

/**
 * A change request event after its raise: one version-guarded update of the state, the linked
 * release and what the event changes.
 */
async function updateChange(event: ProjectedEvent<ChangeRequestEvent>, tx: pg.PoolClient): Promise<void> {
  const m = event.message;
  const version = event.version.toString();
  const at = event.occurredAt;
  // Every change event carries the state after it and the linked release; some carry more.
  const sets: string[] = [];
  const args: unknown[] = [m.changeRequestId, version, at, name(ChangeStateSchema, m.state), m.linkedReleaseId];
  const set = (column: string, value: unknown, cast = "") => {
    args.push(value);
    sets.push(`${column} = $${args.length}${cast}`);
  };
  const setSql = (column: string, sql: (param: (value: unknown) => string) => string) => {
    sets.push(
      `${column} = ${sql((value) => {
        args.push(value);
        return `$${args.length}`;
      })}`,
    );
  };
  setChangedFields(m, at, set, setSql);
  setDeployments(m, set, setSql);
  await tx.query(
    `UPDATE change_view SET version = $2, updated_at = $3, state = $4, linked_release_id = $5
       ${sets.length ? `, ${sets.join(", ")}` : ""}
     WHERE change_request_id = $1 AND ${versionGuard("version", 2)}`,
    args,
  );
}

/**
 * The change calendar views. Each row keeps the stream version it reflects, so an event at or
 * below it (a replay) changes nothing; the board of a raised change comes from the kernel's
 * change rules.
 */
export const changeProjection: Projection<ChangeServiceEvent> = {
  name: "gateway.changes",
  topic: CHANGE_EVENTS_TOPIC,
  handles: file_rdm_change_v1_events.messages,
  migrations: changeProjectionMigrations,
  async apply(event, tx) {
    const m = event.message;
    switch (m.$typeName) {
      case "rdm.change.v1.ChangeRequestRaised":
        return insertRaised({ ...event, message: m }, tx);
      case "rdm.change.v1.FreezeWindowDeclared":
        return insertFreezeWindow({ ...event, message: m }, tx);
      case "rdm.change.v1.FreezeWindowLifted":
        await tx.query(
          `UPDATE freeze_window_view SET lifted = true, version = $2
           WHERE freeze_window_id = $1 AND ${versionGuard("version", 2)}`,
          [m.freezeWindowId, event.version.toString()],
        );
        return;
      default:
        // standard change template events: not shown here
        if ("changeRequestId" in m) await updateChange({ ...event, message: m }, tx);
    }
  },
};
