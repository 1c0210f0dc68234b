import { createRegistry, type DescEnum } from "@bufbuild/protobuf";
import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import type { CloudEvent } from "@rdm/messaging";
import { PermanentError } from "@rdm/messaging";
import {
  ApprovalDecisionSchema,
  ChangeBoardSchema,
  type ChangeCollision,
  ChangeImpactSchema,
  ChangeReviewOutcomeSchema,
  ChangeRiskSchema,
  ChangeStateSchema,
  ChangeType,
  ChangeTypeSchema,
  ChangeUrgencySchema,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  type ChangeApprovalRecorded,
  type ChangeImplementationStarted,
  type ChangeRequestAssessed,
  type ChangeRequestAuthorized,
  type ChangeRequestClosed,
  type ChangeRequestDetailsUpdated,
  type ChangeRequestFailed,
  type ChangeRequestImplemented,
  type ChangeRequestRaised,
  type ChangeRequestRejected,
  type ChangeRequestReleaseLinked,
  type ChangeRequestReleaseUnlinked,
  type ChangeRequestReviewed,
  type ChangeRequestScheduled,
  type ChangeRequestSubmitted,
  type ChangeTaskAdded,
  type ChangeTaskCompleted,
  type FreezeWindowDeclared,
  type FreezeWindowLifted,
  file_rdm_change_v1_events,
  type StandardChangeTemplateRegistered,
  type StandardChangeTemplateRetired,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { TimeWindow } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";
import { decodeStorable } from "./storable-text.js";

export const CHANGE_EVENTS_TOPIC = "rdm.change.events.v1";

export const changeProjectionMigrations = [
  {
    version: 1,
    name: "change and freeze window projection",
    sql: `
      CREATE TABLE change_view (
        change_request_id              uuid PRIMARY KEY,
        key                            text NOT NULL,
        type                           text NOT NULL,
        state                          text NOT NULL,
        title                          text NOT NULL,
        description                    text NOT NULL,
        justification                  text NOT NULL,
        requester                      text NOT NULL,
        affected_ci_ids                text[] NOT NULL,
        environments                   text[] NOT NULL,
        implementation_plan            text NOT NULL,
        test_plan                      text NOT NULL,
        backout_plan                   text NOT NULL,
        impact                         text NOT NULL,
        urgency                        text NOT NULL,
        risk                           text NOT NULL,
        board                          text NOT NULL,
        required_approvals             int NOT NULL DEFAULT 0,
        approvals                      jsonb NOT NULL DEFAULT '[]',
        window_start                   timestamptz,
        window_end                     timestamptz,
        linked_release_id              text NOT NULL,
        template_id                    text NOT NULL,
        assessment_notes               text NOT NULL DEFAULT '',
        rejection_reason               text NOT NULL DEFAULT '',
        overridden_freeze_ids          text[] NOT NULL DEFAULT '{}',
        freeze_override_justification  text NOT NULL DEFAULT '',
        scheduling_collisions          jsonb NOT NULL DEFAULT '[]',
        tasks                          jsonb NOT NULL DEFAULT '[]',
        failure_reason                 text NOT NULL DEFAULT '',
        review_outcome                 text NOT NULL DEFAULT 'UNSPECIFIED',
        review_notes                   text NOT NULL DEFAULT '',
        raised_at                      timestamptz NOT NULL,
        updated_at                     timestamptz NOT NULL,
        version                        bigint NOT NULL
      );
      CREATE INDEX change_view_page ON change_view (raised_at DESC, change_request_id DESC);
      CREATE INDEX change_view_window ON change_view (window_start, window_end);
      CREATE INDEX change_view_cis ON change_view USING gin (affected_ci_ids);
      CREATE TABLE freeze_window_view (
        freeze_window_id uuid PRIMARY KEY,
        name             text NOT NULL,
        reason           text NOT NULL,
        window_start     timestamptz NOT NULL,
        window_end       timestamptz NOT NULL,
        scope_all        boolean NOT NULL,
        scope_ci_ids     text[] NOT NULL,
        scope_environments text[] NOT NULL,
        lifted           boolean NOT NULL,
        declared_by      text NOT NULL,
        version          bigint NOT NULL
      );
      CREATE INDEX freeze_window_view_window ON freeze_window_view (window_start, window_end);`,
  },
];

/** Every message published on rdm.change.events.v1. */
export type ChangeServiceEvent =
  | ChangeRequestRaised
  | ChangeRequestDetailsUpdated
  | ChangeRequestSubmitted
  | ChangeRequestAssessed
  | ChangeApprovalRecorded
  | ChangeRequestAuthorized
  | ChangeRequestRejected
  | ChangeRequestScheduled
  | ChangeImplementationStarted
  | ChangeRequestImplemented
  | ChangeRequestFailed
  | ChangeRequestReviewed
  | ChangeRequestClosed
  | ChangeTaskAdded
  | ChangeTaskCompleted
  | ChangeRequestReleaseLinked
  | ChangeRequestReleaseUnlinked
  | FreezeWindowDeclared
  | FreezeWindowLifted
  | StandardChangeTemplateRegistered
  | StandardChangeTemplateRetired;

const registry = createRegistry(file_rdm_change_v1_events);

/** Enum value -> its name without the type prefix (CHANGE_STATE_SCHEDULED -> SCHEDULED). */
const name = (schema: DescEnum, value: number) =>
  schema.values.find((v) => v.number === value)?.localName ?? "UNSPECIFIED";
const date = (value: Timestamp | undefined) => (value ? timestampDate(value) : null);
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

/**
 * Applies one change service event to the change calendar views inside the consumer's
 * transaction. Each row keeps the stream version it reflects, so an event at or below it (a
 * replay) changes nothing. Unknown event types are skipped (forward compatible); bytes that do
 * not decode go to the dead-letter topic.
 */
export async function projectChangeEvent(event: CloudEvent, tx: pg.PoolClient): Promise<void> {
  const schema = registry.getMessage(event.type);
  if (!schema) return;
  let message: ChangeServiceEvent;
  try {
    message = decodeStorable(schema, event.data) as typeof message;
  } catch (error) {
    throw new PermanentError(`cannot decode ${event.type}: ${(error as Error).message}`);
  }
  const version = (message.metadata?.streamVersion ?? 0n).toString();
  const at = date(message.metadata?.occurredAt) ?? event.time;

  if (message.$typeName === "rdm.change.v1.ChangeRequestRaised") {
    const m = message;
    await tx.query(
      `INSERT INTO change_view (change_request_id, key, type, state, title, description, justification, requester,
         affected_ci_ids, environments, implementation_plan, test_plan, backout_plan, impact, urgency, risk, board,
         window_start, window_end, linked_release_id, template_id, raised_at, updated_at, version)
       VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20,$21,$22,$22,$23)
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
        m.type === ChangeType.EMERGENCY ? "ECAB" : m.type === ChangeType.STANDARD ? "PRE_AUTHORIZED" : "CAB",
        windowStart(m.plannedWindow),
        windowEnd(m.plannedWindow),
        m.linkedReleaseId,
        m.templateId,
        at,
        version,
      ],
    );
    return;
  }
  if (message.$typeName === "rdm.change.v1.FreezeWindowDeclared") {
    const m = message;
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
        m.metadata?.actor ?? "",
        version,
      ],
    );
    return;
  }
  if (message.$typeName === "rdm.change.v1.FreezeWindowLifted") {
    await tx.query(
      "UPDATE freeze_window_view SET lifted = true, version = $2 WHERE freeze_window_id = $1 AND version < $2",
      [message.freezeWindowId, version],
    );
    return;
  }
  if (!("changeRequestId" in message)) return; // standard change template events: not shown here

  // Every change event carries the state after it and the linked release; some carry more.
  const sets: string[] = [];
  const args: unknown[] = [
    message.changeRequestId,
    version,
    at,
    name(ChangeStateSchema, message.state),
    message.linkedReleaseId,
  ];
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
  const m = message;
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
  await tx.query(
    `UPDATE change_view SET version = $2, updated_at = $3, state = $4, linked_release_id = $5
       ${sets.length ? `, ${sets.join(", ")}` : ""}
     WHERE change_request_id = $1 AND version < $2`,
    args,
  );
}
