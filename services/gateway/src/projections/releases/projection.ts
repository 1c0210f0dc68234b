import { fromBinary, fromJson, type JsonValue, toBinary, toJson } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import {
  evolve,
  fold,
  initialState,
  RELEASE_RULES_VERSION,
  type ReleaseEvent,
  type ReleaseState,
} from "@rdm/domain-kernel/release";
import { RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
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
import type pg from "pg";
import { enumName } from "../enums.js";
import { type ProjectedEvent, type Projection, versionGuard } from "../projection.js";
import { releaseProjectionMigrations } from "./migrations.js";

/** NOTIFY channel raised (at commit) whenever release history rows are added; wakes SSE streams. */
export const RELEASE_HISTORY_CHANNEL = "rdm_gateway_release_history";

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
 * One upsert of the overview row for every event. The version guard makes a replayed event
 * change nothing; a rebuild (`refold`) writes the refolded state at the same version.
 */
async function saveRelease(tx: pg.PoolClient, state: ReleaseState, occurredAt: Date, refold = false) {
  const r = state.release;
  if (!r || !state.model) return;
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
     WHERE $21 OR ${versionGuard("release_view.version", 16)}`,
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
      r.version.toString(),
      enumName(ReleaseStatusSchema, r.status),
      r.phaseDueAt && r.status === ReleaseStatus.ACTIVE ? timestampDate(r.phaseDueAt) : null,
      JSON.stringify(toSnapshot(state)),
      JSON.stringify(toJson(ReleaseModelSchema, state.model)),
      refold,
    ],
  );
}

/** The audit trail row of the event, and the NOTIFY that wakes the SSE streams. */
async function recordHistory(tx: pg.PoolClient, event: ProjectedEvent<ReleaseEvent>, state: ReleaseState) {
  const m = event.message;
  const reason = (m as { reason?: unknown }).reason;
  // SSE readers resume after the last seq they saw, so seqs must commit in order even with
  // several gateway replicas projecting into one database: take them one transaction at a time.
  await tx.query("SELECT pg_advisory_xact_lock(hashtext($1))", [RELEASE_HISTORY_CHANNEL]);
  await tx.query(
    `INSERT INTO release_history (release_id, version, event_type, occurred_at, actor, reason, phase,
       event_id, correlation_id, causation_id, request_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (release_id, version) DO NOTHING`,
    [
      m.releaseId,
      event.version.toString(),
      m.$typeName,
      event.occurredAt,
      event.actor,
      typeof reason === "string" ? reason : "",
      enumName(ReleasePhaseSchema, state.release?.phase ?? 0),
      m.metadata?.eventId || event.envelope.id,
      m.metadata?.correlationId ?? "",
      m.metadata?.causationId ?? "",
      m.metadata?.requestId ?? "",
    ],
  );
  await tx.query("SELECT pg_notify($1, '')", [RELEASE_HISTORY_CHANNEL]);
}

/**
 * Applies one release event: the release's state is folded with the kernel's evolve (the
 * release service's own rules), so the overview equals what the service answers; the event is
 * kept in the release's log, to refold from when evolve changes.
 */
async function applyReleaseEvent(event: ProjectedEvent<ReleaseEvent>, tx: pg.PoolClient): Promise<void> {
  const m = event.message;
  let state: ReleaseState;
  if (m.$typeName === "rdm.release.v1.ReleaseRegistered") state = evolve(initialState(), m);
  else {
    const current = await loadState(tx, m.releaseId);
    // A row projected before snapshots existed cannot be folded further; rebuild the view
    // (new consumer group and database) to get it back.
    if (!current?.release || current.release.version >= event.version) return;
    state = evolve(current, m);
  }
  if (!state.release || !state.model) return;
  await tx.query(
    `INSERT INTO release_event_log (release_id, version, event_type, event) VALUES ($1, $2, $3, $4)
     ON CONFLICT DO NOTHING`,
    [m.releaseId, event.version.toString(), m.$typeName, Buffer.from(toBinary(schemaOf(m.$typeName), m))],
  );
  await saveRelease(tx, state, event.occurredAt);
  await recordHistory(tx, event, state);
}

/** Every release with a complete log (from its registration) folded again with the current evolve. */
async function refoldReleases(tx: pg.PoolClient): Promise<void> {
  const { rows } = await tx.query<{ release_id: string; updated_at: Date }>(
    `SELECT release_id, updated_at FROM release_view v WHERE EXISTS (SELECT 1 FROM release_event_log l
       WHERE l.release_id = v.release_id AND l.event_type = 'rdm.release.v1.ReleaseRegistered')`,
  );
  for (const row of rows) {
    const { rows: logged } = await tx.query<{ event_type: string; event: Buffer }>(
      "SELECT event_type, event FROM release_event_log WHERE release_id = $1 ORDER BY version",
      [row.release_id],
    );
    const events = logged.map((l) => fromBinary(schemaOf(l.event_type), l.event) as ReleaseEvent);
    await saveRelease(tx, fold(events), row.updated_at, true);
  }
}

/** Model versions live on their own streams; they reach releases through registrations. */
const RELEASE_EVENT_TYPES = file_rdm_release_v1_events.messages.filter(
  (m) => m.typeName !== "rdm.release.v1.ReleaseModelVersionCreated",
);
const schemaOf = (typeName: string) => {
  const schema = RELEASE_EVENT_TYPES.find((m) => m.typeName === typeName);
  if (!schema) throw new Error(`${typeName} is not a release event`);
  return schema;
};

export const releaseProjection: Projection<ReleaseEvent> = {
  name: "gateway.releases",
  topic: RELEASE_EVENTS_TOPIC,
  handles: RELEASE_EVENT_TYPES,
  migrations: releaseProjectionMigrations,
  rules: { version: RELEASE_RULES_VERSION, rebuild: refoldReleases },
  apply: applyReleaseEvent,
};
