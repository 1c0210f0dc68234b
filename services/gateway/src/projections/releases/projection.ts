import { fromBinary, fromJson, fromJsonString, type JsonValue, toJson } from "@bufbuild/protobuf";
import {
  evolve,
  fold,
  initialState,
  RELEASE_RULES_VERSION,
  type ReleaseEvent,
  type ReleaseState,
} from "@rdm/domain-kernel/release";
import { unnestColumns } from "@rdm/eventstore";
import { RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { instantOf } from "@rdm/proto";
import { file_rdm_release_v1_events } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { type ReleaseModel, ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import {
  LogEntrySchema,
  type Release,
  ReleasePhaseSchema,
  ReleaseSchema,
  ReleaseStatus,
  ReleaseStatusSchema,
  ReleaseTypeSchema,
  RiskLevelSchema,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import { enumName } from "../enums.js";
import { type ProjectedEvent, type Projection, serializedBy, versionGuard } from "../projection.js";
import { releaseProjectionMigrations } from "./migrations.js";

/** NOTIFY channel raised (at commit) whenever release history rows are added; wakes SSE streams. */
export const RELEASE_HISTORY_CHANNEL = "rdm_gateway_release_history";

const REGISTERED = "rdm.release.v1.ReleaseRegistered";

/** The release as its view row holds it: without its log, whose entries are rows of their own. */
const toSnapshot = ({ log: _, ...release }: Release) => toJson(ReleaseSchema, { ...release, log: [] });

/**
 * Pinned models by their stored JSON: releases share a few, and states never change their model.
 * Keyed by the whole text, not by name and version, so a model is never taken for another.
 */
const parsedModels = new Map<string, ReleaseModel>();

function parsedModel(json: string): ReleaseModel {
  let model = parsedModels.get(json);
  if (!model) {
    if (parsedModels.size >= 64) parsedModels.clear();
    model = fromJsonString(ReleaseModelSchema, json);
    parsedModels.set(json, model);
  }
  return model;
}

/**
 * The release states this process last wrote, by database and release id. A row still at the
 * version written holds that state (a release's state at a version follows from its events),
 * so it need not be read and parsed again; a row another replica moved on is. A refold with new
 * rules changes states at unchanged versions: it empties this. A state kept holds no log
 * entries (those written are rows; see LoggedState). Kept within WRITTEN_CHARS of their JSON
 * (parsed, a few times that in memory), the least recently written dropped first; a large
 * release is not kept.
 */
const written = new Map<string, { state: ReleaseState; chars: number }>();
const WRITTEN_CHARS = 4 * 1024 * 1024;
let writtenChars = 0;

const writtenKey = (tx: pg.PoolClient, releaseId: string) => {
  const { host, port, database } = tx as pg.PoolClient & { host: string; port: number; database: string };
  return `${host}:${port}/${database}/${releaseId}`;
};

function forgetWritten(key: string) {
  writtenChars -= written.get(key)?.chars ?? 0;
  written.delete(key);
}

function rememberWritten(tx: pg.PoolClient, rows: { state: ReleaseState; chars: number }[]) {
  for (const { state, chars } of rows) {
    if (!state.release) continue;
    const key = writtenKey(tx, state.release.releaseId);
    forgetWritten(key);
    if (chars > WRITTEN_CHARS / 64) continue;
    written.set(key, { state, chars });
    writtenChars += chars;
  }
  for (const key of written.keys()) {
    if (writtenChars <= WRITTEN_CHARS) break;
    forgetWritten(key);
  }
}

/**
 * A release's state as the projection folds it: its log holds only the entries not written yet,
 * which come after the `logLength` entries its rows hold (the log only grows).
 */
interface LoggedState {
  state: ReleaseState;
  logLength: number;
}

/**
 * The stored states of `releaseIds`, locked; one this process wrote at the row's version is
 * taken from memory. Rows without a snapshot cannot be folded further: left out.
 */
async function loadStates(tx: pg.PoolClient, releaseIds: string[]): Promise<Map<string, LoggedState>> {
  const states = new Map<string, LoggedState>();
  if (!releaseIds.length) return states;
  const known = new Map<string, ReleaseState>();
  for (const id of releaseIds) {
    const state = written.get(writtenKey(tx, id))?.state;
    if (state?.release) known.set(id, state);
  }
  const { rows } = await tx.query<{
    release_id: string;
    log_length: number;
    known: boolean | null;
    snapshot: JsonValue | null;
    model: string | null;
  }>({
    name: "rdm_release_view_states",
    text: `SELECT v.release_id, v.log_length, v.version = k.version AS known,
        CASE WHEN v.version = k.version THEN NULL ELSE v.snapshot END AS snapshot,
        CASE WHEN v.version = k.version THEN NULL ELSE v.model::text END AS model
      FROM release_view v LEFT JOIN unnest($2::uuid[], $3::bigint[]) AS k (release_id, version) USING (release_id)
      WHERE v.release_id = ANY($1::uuid[]) ORDER BY v.release_id FOR UPDATE OF v`,
    values: [releaseIds, [...known.keys()], [...known.values()].map((state) => state.release?.version.toString())],
  });
  for (const row of rows) {
    const logLength = row.log_length;
    const state = row.known ? known.get(row.release_id) : undefined;
    if (state) states.set(row.release_id, { state, logLength });
    else if (row.snapshot && row.model) {
      const release = fromJson(ReleaseSchema, row.snapshot);
      // A snapshot written before the log had rows of its own has none left (migration 5).
      states.set(row.release_id, { state: { release, model: parsedModel(row.model) }, logLength });
    }
  }
  return states;
}

/**
 * An overview row to write: the release's state (its new log entries to add after the
 * `logLength` stored), when it was registered and last changed, and whether the row may be new
 * (only then is its model sent: an existing row keeps the one pinned at registration, and the
 * model is most of a row's bytes).
 */
interface ViewRow extends LoggedState {
  registeredAt: Date;
  updatedAt: Date;
  mayBeNew: boolean;
}

/** The events applied, each with the state it produced. */
type Applied = { event: ProjectedEvent<ReleaseEvent>; state: ReleaseState }[];

/** An overview row's columns, in release_view's order (see RELEASES_WRITE). */
function viewValues({ state, logLength, registeredAt, updatedAt, mayBeNew }: ViewRow) {
  const r = state.release;
  if (!r || !state.model) return undefined;
  const snapshot = JSON.stringify(toSnapshot(r));
  const model = mayBeNew ? JSON.stringify(toJson(ReleaseModelSchema, state.model)) : null;
  const values = [
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
    instantOf(r.plannedWindow?.start, null),
    instantOf(r.plannedWindow?.end, null),
    enumName(ReleasePhaseSchema, r.phase),
    r.registeredBy,
    registeredAt,
    r.version.toString(),
    updatedAt,
    enumName(ReleaseStatusSchema, r.status),
    r.phaseDueAt && r.status === ReleaseStatus.ACTIVE ? instantOf(r.phaseDueAt) : null,
    snapshot,
    model,
    logLength + r.log.length,
  ];
  // A model read back is shared (parsedModel); one from a registration is the row's own.
  return { values, chars: snapshot.length + (model?.length ?? 0) };
}

const reasonOf = (message: ReleaseEvent) => {
  const reason = (message as { reason?: unknown }).reason;
  return typeof reason === "string" ? reason : "";
};

/** An applied event's columns in its release's log and in the release history (see RELEASES_WRITE). */
const eventValues = ({ event, state }: Applied[number]): unknown[] => [
  event.message.releaseId,
  event.version.toString(),
  event.message.$typeName,
  Buffer.from(event.data),
  event.occurredAt,
  event.actor,
  reasonOf(event.message),
  enumName(ReleasePhaseSchema, state.release?.phase ?? 0),
  event.message.metadata?.eventId || event.envelope.id,
  event.message.metadata?.correlationId ?? "",
  event.message.metadata?.causationId ?? "",
  event.message.metadata?.requestId ?? "",
];

/**
 * A chunk's writes in one statement: the overview rows (one per release; the version guard makes
 * a replayed event change nothing, a rebuild, $2, writes the refolded state at the same version)
 * with their new log entries, then each applied event in its release's event log (to refold
 * from) and in the release history. A replayed event adds no log entry: the fold skips what a
 * row's state includes, and an entry folded again from a replayed registration is the one its
 * position holds. SSE readers resume after the last history seq they saw, so seqs must commit
 * in order even with several gateway replicas projecting into one database: one transaction at a
 * time, with the NOTIFY that wakes the streams, delivered at commit (serializedBy).
 */
const RELEASES_WRITE = `WITH ${serializedBy("$1")},
  viewed AS (
    INSERT INTO release_view (release_id, key, title, description, type, category, owner, coordinator,
      stakeholders, risk, planned_start, planned_end, phase, registered_by, registered_at, version, updated_at,
      status, phase_due_at, snapshot, model, log_length)
    SELECT * FROM unnest($3::uuid[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
      $10::text[], $11::jsonb[], $12::text[], $13::timestamptz[], $14::timestamptz[], $15::text[], $16::text[],
      $17::timestamptz[], $18::bigint[], $19::timestamptz[], $20::text[], $21::timestamptz[], $22::jsonb[],
      $23::jsonb[], $24::integer[])
    ON CONFLICT (release_id) DO UPDATE SET title = EXCLUDED.title, description = EXCLUDED.description,
      category = EXCLUDED.category, coordinator = EXCLUDED.coordinator, stakeholders = EXCLUDED.stakeholders,
      risk = EXCLUDED.risk, planned_start = EXCLUDED.planned_start, planned_end = EXCLUDED.planned_end,
      phase = EXCLUDED.phase, version = EXCLUDED.version, updated_at = EXCLUDED.updated_at,
      status = EXCLUDED.status, phase_due_at = EXCLUDED.phase_due_at, snapshot = EXCLUDED.snapshot,
      log_length = EXCLUDED.log_length
    WHERE $2 OR ${versionGuard("release_view.version", "EXCLUDED.version")}),
  entries AS (
    INSERT INTO release_log_view (release_id, position, entry)
    SELECT * FROM unnest($37::uuid[], $38::integer[], $39::jsonb[]) ON CONFLICT DO NOTHING),
  events AS (
    SELECT * FROM unnest($25::uuid[], $26::bigint[], $27::text[], $28::bytea[], $29::timestamptz[], $30::text[],
      $31::text[], $32::text[], $33::text[], $34::text[], $35::text[], $36::text[]) WITH ORDINALITY
      AS e(release_id, version, event_type, event, occurred_at, actor, reason, phase, event_id, correlation_id,
        causation_id, request_id, n)),
  logged AS (
    INSERT INTO release_event_log (release_id, version, event_type, event)
    SELECT release_id, version, event_type, event FROM events ORDER BY n ON CONFLICT DO NOTHING)
  INSERT INTO release_history (release_id, version, event_type, occurred_at, actor, reason, phase, event_id,
    correlation_id, causation_id, request_id)
  SELECT e.release_id, e.version, e.event_type, e.occurred_at, e.actor, e.reason, e.phase, e.event_id,
    e.correlation_id, e.causation_id, e.request_id
  FROM events e, serialized ORDER BY e.n ON CONFLICT (release_id, version) DO NOTHING`;

/** The new log entries of the overview rows, each at its position in its release's log. */
const logEntryValues = (views: ViewRow[]) =>
  views.flatMap(({ state: { release }, logLength }) =>
    (release?.log ?? []).map((entry, i) => [
      release?.releaseId,
      logLength + i,
      JSON.stringify(toJson(LogEntrySchema, entry)),
    ]),
  );

/**
 * The overview rows, their new log entries and the applied events, written in one statement
 * (RELEASES_WRITE). The rows' states are left holding no log entry (they are written) and
 * returned, each with the length of the JSON written for it.
 */
async function writeReleases(tx: pg.PoolClient, views: ViewRow[], applied: Applied, refold = false) {
  const rows = views.flatMap((view) => {
    const row = viewValues(view);
    return row ? [{ state: view.state, ...row }] : [];
  });
  await tx.query({
    name: "rdm_release_write",
    text: RELEASES_WRITE,
    values: [
      RELEASE_HISTORY_CHANNEL,
      refold,
      ...unnestColumns(
        rows.map((row) => row.values),
        22,
      ),
      ...unnestColumns(applied.map(eventValues), 12),
      ...unnestColumns(logEntryValues(views), 3),
    ],
  });
  for (const { state } of views) if (state.release) state.release.log = [];
  return rows;
}

/**
 * The releases whose stored state the events need: those with an event before which the chunk
 * does not register them (a release's stream starts with its one registration).
 */
function storedStatesNeeded(events: ProjectedEvent<ReleaseEvent>[]): string[] {
  const registered = new Set<string>();
  const needed = new Set<string>();
  for (const { message: m } of events) {
    if (m.$typeName === REGISTERED) registered.add(m.releaseId);
    else if (!registered.has(m.releaseId)) needed.add(m.releaseId);
  }
  return [...needed];
}

/**
 * Folds the events in order, each onto its release's state: the stored one (read once), then
 * the one the events before it in the chunk produced. A registration starts from nothing; an
 * event its release's state already includes changes nothing. What the overview row holds after
 * each event is kept as its guarded upsert would leave it, so one upsert per release suffices.
 */
async function foldEvents(events: ProjectedEvent<ReleaseEvent>[], tx: pg.PoolClient) {
  const stored = await loadStates(tx, storedStatesNeeded(events));
  const views = new Map<string, ViewRow>();
  const applied: Applied = [];
  for (const event of events) {
    const m = event.message;
    const row = views.get(m.releaseId) ?? stored.get(m.releaseId);
    let folded: LoggedState;
    if (m.$typeName === REGISTERED) folded = { state: evolve(initialState(), m), logLength: 0 };
    else {
      // A row projected before snapshots existed cannot be folded further; rebuild the view
      // (new consumer group and database) to get it back.
      if (!row?.state.release || row.state.release.version >= event.version) continue;
      folded = { state: evolve(row.state, m), logLength: row.logLength };
    }
    const { release, model } = folded.state;
    if (!release || !model) continue;
    applied.push({ event, state: folded.state });
    if (row?.state.release && row.state.release.version >= release.version) continue; // the guard keeps the row
    const registeredAt = views.get(m.releaseId)?.registeredAt ?? event.occurredAt;
    const mayBeNew = !stored.has(m.releaseId);
    views.set(m.releaseId, { ...folded, registeredAt, updatedAt: event.occurredAt, mayBeNew });
  }
  return { applied, views: [...views.values()] };
}

/**
 * Applies release events: each release's state is folded with the kernel's evolve (the release
 * service's own rules), so the overview equals what the service answers; each event is kept in
 * its release's log, to refold from when evolve changes. A chunk's events are one statement.
 */
async function applyReleaseEvents(events: ProjectedEvent<ReleaseEvent>[], tx: pg.PoolClient): Promise<void> {
  const { applied, views } = await foldEvents(events, tx);
  if (!applied.length) return;
  rememberWritten(tx, await writeReleases(tx, views, applied));
}

/** Every release with a complete log (from its registration) folded again with the current evolve. */
async function refoldReleases(tx: pg.PoolClient): Promise<void> {
  written.clear();
  writtenChars = 0;
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
    // The whole log again, from its first entry.
    await tx.query("DELETE FROM release_log_view WHERE release_id = $1", [row.release_id]);
    await writeReleases(
      tx,
      [{ state: fold(events), logLength: 0, registeredAt: row.updated_at, updatedAt: row.updated_at, mayBeNew: false }],
      [],
      true,
    );
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
  apply: (event, tx) => applyReleaseEvents([event], tx),
  applyAll: applyReleaseEvents,
};
