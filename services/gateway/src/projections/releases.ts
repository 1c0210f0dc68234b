import { createRegistry, type DescEnum, fromJson, type JsonValue, toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { CloudEvent } from "@rdm/messaging";
import { PermanentError } from "@rdm/messaging";
import { file_rdm_release_v1_events } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import {
  ReleasePhaseSchema,
  ReleaseSchema,
  ReleaseStatus,
  ReleaseStatusSchema,
  ReleaseTypeSchema,
  RiskLevelSchema,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { evolve, initialState, type ReleaseEvent, type ReleaseState } from "@rdm/release/domain";
import type pg from "pg";
import { decodeStorable } from "./storable-text.js";

export const RELEASE_EVENTS_TOPIC = "rdm.release.events.v1";
/** NOTIFY channel raised (at commit) whenever release history rows are added; wakes SSE streams. */
export const RELEASE_HISTORY_CHANNEL = "rdm_gateway_release_history";

export const releaseProjectionMigrations = [
  {
    version: 1,
    name: "release projection",
    sql: `
      CREATE TABLE release_view (
        release_id    uuid PRIMARY KEY,
        key           text NOT NULL UNIQUE,
        title         text NOT NULL,
        description   text NOT NULL,
        type          text NOT NULL,
        category      text NOT NULL,
        owner         text NOT NULL,
        coordinator   text NOT NULL,
        stakeholders  jsonb NOT NULL,
        risk          text NOT NULL,
        planned_start timestamptz,
        planned_end   timestamptz,
        phase         text NOT NULL,
        registered_by text NOT NULL,
        registered_at timestamptz NOT NULL,
        version       bigint NOT NULL,
        updated_at    timestamptz NOT NULL
      );
      CREATE INDEX release_view_page ON release_view (registered_at DESC, release_id DESC);`,
  },
  {
    version: 2,
    name: "release lifecycle: state snapshot, pinned model, deadlines, history",
    sql: `
      -- The release state folded with the release service's own evolve (as protobuf JSON), and
      -- the model version it pinned, so gates are evaluated exactly as the service does.
      ALTER TABLE release_view
        ADD COLUMN status       text NOT NULL DEFAULT 'ACTIVE',
        ADD COLUMN phase_due_at timestamptz,
        ADD COLUMN snapshot     jsonb,
        ADD COLUMN model        jsonb;
      CREATE INDEX release_view_overdue ON release_view (phase_due_at) WHERE status = 'ACTIVE';
      -- Keys are unique in the release service; a read model must not refuse what its source
      -- accepted (several release databases behind one topic in tests, a reset service in dev).
      ALTER TABLE release_view DROP CONSTRAINT release_view_key_key;
      CREATE INDEX release_view_key ON release_view (key);

      -- Audit trail of every release event; seq orders the SSE stream (and resumes it).
      CREATE TABLE release_history (
        seq         bigserial UNIQUE,
        release_id  uuid NOT NULL,
        version     bigint NOT NULL,
        event_type  text NOT NULL,
        occurred_at timestamptz NOT NULL,
        actor       text NOT NULL,
        reason      text NOT NULL,
        phase       text NOT NULL,
        PRIMARY KEY (release_id, version)
      );`,
  },
  {
    version: 3,
    name: "release history: event, correlation, causation and request ids (the audit trail)",
    sql: `
      ALTER TABLE release_history
        ADD COLUMN event_id       text NOT NULL DEFAULT '',
        ADD COLUMN correlation_id text NOT NULL DEFAULT '',
        ADD COLUMN causation_id   text NOT NULL DEFAULT '',
        ADD COLUMN request_id     text NOT NULL DEFAULT '';
      CREATE INDEX release_history_correlation ON release_history (correlation_id) WHERE correlation_id <> '';`,
  },
];

const registry = createRegistry(file_rdm_release_v1_events);

/** Enum value -> its name without the type prefix (RELEASE_TYPE_MAJOR -> MAJOR). */
export function enumName(schema: DescEnum, value: number): string {
  return schema.values.find((v) => v.number === value)?.localName ?? "UNSPECIFIED";
}

const toSnapshot = (state: ReleaseState) => (state.release ? toJson(ReleaseSchema, state.release) : null);

async function loadState(tx: pg.PoolClient, releaseId: string): Promise<ReleaseState | undefined> {
  const { rows } = await tx.query<{ snapshot: JsonValue | null; model: JsonValue | null }>(
    "SELECT snapshot, model FROM release_view WHERE release_id = $1 FOR UPDATE",
    [releaseId],
  );
  const row = rows[0];
  if (!row?.snapshot || !row.model) return undefined;
  return { release: fromJson(ReleaseSchema, row.snapshot), model: fromJson(ReleaseModelSchema, row.model) };
}

/**
 * Applies one release event to the views inside the consumer's transaction: the release's
 * state is folded with the release domain's evolve, so the overview equals what the service
 * answers. Event types this gateway does not know are skipped (forward compatible); bytes that
 * do not decode are a permanent failure and go to the dead-letter topic.
 */
export async function projectReleaseEvent(event: CloudEvent, tx: pg.PoolClient): Promise<void> {
  const schema = registry.getMessage(event.type);
  if (!schema) return;
  let decoded: { $typeName: string };
  try {
    decoded = decodeStorable(schema, event.data);
  } catch (error) {
    throw new PermanentError(`cannot decode ${event.type}: ${(error as Error).message}`);
  }
  // Model versions live on their own streams; they reach releases through registrations.
  if (decoded.$typeName === "rdm.release.v1.ReleaseModelVersionCreated") return;
  const m = decoded as ReleaseEvent;
  const releaseId = m.releaseId;
  const version = m.metadata?.streamVersion ?? 0n;
  const occurredAt = m.metadata?.occurredAt ? timestampDate(m.metadata.occurredAt) : event.time;

  let state: ReleaseState;
  if (m.$typeName === "rdm.release.v1.ReleaseRegistered") state = evolve(initialState(), m);
  else {
    const current = await loadState(tx, releaseId);
    // A row projected before snapshots existed cannot be folded further; rebuild the view
    // (new consumer group and database) to get it back.
    if (!current?.release || current.release.version >= version) return;
    state = evolve(current, m);
  }
  const r = state.release;
  if (!r || !state.model) return;
  // One upsert for every event; the version guard makes a replayed event change nothing.
  await tx.query(
    `INSERT INTO release_view (release_id, key, title, description, type, category, owner, coordinator,
       stakeholders, risk, planned_start, planned_end, phase, registered_by, registered_at, version, updated_at,
       status, phase_due_at, snapshot, model)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$15,$17,$18,$19,$20)
     ON CONFLICT (release_id) DO UPDATE SET title = EXCLUDED.title, description = EXCLUDED.description,
       category = EXCLUDED.category, coordinator = EXCLUDED.coordinator, stakeholders = EXCLUDED.stakeholders,
       risk = EXCLUDED.risk, planned_start = EXCLUDED.planned_start, planned_end = EXCLUDED.planned_end,
       phase = EXCLUDED.phase, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
       status = EXCLUDED.status, phase_due_at = EXCLUDED.phase_due_at, snapshot = EXCLUDED.snapshot
     WHERE release_view.version < EXCLUDED.version`,
    [
      r.releaseId,
      r.key,
      r.title,
      r.description,
      enumName(ReleaseTypeSchema, r.type),
      r.category,
      r.owner,
      r.coordinator,
      JSON.stringify(r.stakeholders),
      enumName(RiskLevelSchema, r.risk),
      r.plannedWindow?.start ? timestampDate(r.plannedWindow.start) : null,
      r.plannedWindow?.end ? timestampDate(r.plannedWindow.end) : null,
      enumName(ReleasePhaseSchema, r.phase),
      r.registeredBy,
      occurredAt,
      version.toString(),
      enumName(ReleaseStatusSchema, r.status),
      r.phaseDueAt && r.status === ReleaseStatus.ACTIVE ? timestampDate(r.phaseDueAt) : null,
      JSON.stringify(toSnapshot(state)),
      JSON.stringify(toJson(ReleaseModelSchema, state.model)),
    ],
  );
  const reason = (m as { reason?: unknown }).reason;
  // SSE readers resume after the last seq they saw, so seqs must commit in order even with
  // several gateway replicas projecting into one database: take them one transaction at a time.
  await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [RELEASE_HISTORY_CHANNEL]);
  await tx.query(
    `INSERT INTO release_history (release_id, version, event_type, occurred_at, actor, reason, phase,
       event_id, correlation_id, causation_id, request_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (release_id, version) DO NOTHING`,
    [
      releaseId,
      version.toString(),
      m.$typeName,
      occurredAt,
      m.metadata?.actor ?? "",
      typeof reason === "string" ? reason : "",
      enumName(ReleasePhaseSchema, state.release?.phase ?? 0),
      m.metadata?.eventId || event.id,
      m.metadata?.correlationId ?? "",
      m.metadata?.causationId ?? "",
      m.metadata?.requestId ?? "",
    ],
  );
  await tx.query("SELECT pg_notify($1, '')", [RELEASE_HISTORY_CHANNEL]);
}
