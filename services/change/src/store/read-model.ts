import { fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { Projected } from "@rdm/command-handler";
import { lastPerKey, type Migration, type Projection, textArrayOfJson, unnestColumns } from "@rdm/eventstore";
import { YearlyKeys, yearlyNumbersSql } from "@rdm/keys";
import { instantOf } from "@rdm/proto";
import {
  type ChangeRequest,
  ChangeRequestSchema,
  ChangeState,
  type ChangeType,
  type FreezeWindow,
  FreezeWindowSchema,
  type StandardChangeTemplate,
  StandardChangeTemplateSchema,
} from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { isUuid } from "@rdm/runtime";
import type pg from "pg";
import { BOOKED_STATES, type Interval } from "../domain/calendar.js";
import { type ChangeRequestEvent, type ChangeRequestState, changeKey } from "../domain/change-request.js";

type Queryable = Pick<pg.PoolClient, "query">;

/**
 * The change service's own query tables. Each row is the folded aggregate (protobuf bytes) plus
 * the columns queries filter on, written in the same transaction as the events it reflects, so
 * a query never sees a state the event store does not hold. The streams stay the source of truth.
 */
export const readModelMigrations: Migration[] = [
  {
    version: 1,
    name: "change keys",
    // Per-year counters for human-readable keys (CHG-2026-0042); gaps are allowed.
    sql: "CREATE TABLE change_keys (year int PRIMARY KEY, last int NOT NULL)",
  },
  {
    version: 2,
    name: "change calendar tables",
    sql: `
      CREATE TABLE change_requests (
        change_request_id uuid PRIMARY KEY,
        key text NOT NULL,
        type int NOT NULL,
        state int NOT NULL,
        title text NOT NULL,
        affected_ci_ids text[] NOT NULL,
        environments text[] NOT NULL,
        linked_release_id text NOT NULL,
        window_start timestamptz,
        window_end timestamptz,
        raised_at timestamptz NOT NULL,
        version bigint NOT NULL,
        data bytea NOT NULL
      );
      CREATE INDEX change_requests_cis ON change_requests USING gin (affected_ci_ids);
      CREATE INDEX change_requests_window ON change_requests (window_start, window_end);
      CREATE INDEX change_requests_release ON change_requests (linked_release_id) WHERE linked_release_id <> '';
      CREATE INDEX change_requests_raised ON change_requests (raised_at DESC, change_request_id);
      CREATE TABLE freeze_windows (
        freeze_window_id uuid PRIMARY KEY,
        window_start timestamptz NOT NULL,
        window_end timestamptz NOT NULL,
        lifted boolean NOT NULL,
        data bytea NOT NULL
      );
      CREATE INDEX freeze_windows_window ON freeze_windows (window_start, window_end);
      CREATE TABLE standard_change_templates (
        template_id uuid PRIMARY KEY,
        name text NOT NULL,
        retired boolean NOT NULL,
        data bytea NOT NULL
      );`,
  },
  {
    version: 3,
    name: "change keys from a sequence per year",
    // The per-year counter row serialised every RaiseChange on its lock until commit.
    sql: yearlyNumbersSql("rdm_next_change_number", "change_key", "change_keys"),
  },
];

const ts = (value: Timestamp | undefined) => instantOf(value, null);

/**
 * Upserts the change requests' rows, one statement for them all (a group-committed batch of
 * commands, or a rebuild's thousand). The CI and environment lists go as JSON, as unnest cannot
 * take arrays of differing lengths. The raising time never changes once raised.
 */
export async function saveChanges(db: Queryable, changes: readonly ChangeRequest[]): Promise<void> {
  if (changes.length === 0) return;
  const latest = lastPerKey(changes, (change) => change.changeRequestId);
  await db.query({
    name: "change_requests_upsert",
    text: `INSERT INTO change_requests (change_request_id, key, type, state, title, affected_ci_ids, environments,
             linked_release_id, window_start, window_end, raised_at, version, data)
           SELECT id, key, type, state, title,
             ${textArrayOfJson("cis")}, ${textArrayOfJson("envs")}, release, window_start, window_end, raised_at, version, data
           FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[], $5::text[], $6::jsonb[], $7::jsonb[], $8::text[],
                       $9::timestamptz[], $10::timestamptz[], $11::timestamptz[], $12::bigint[], $13::bytea[])
             AS r (id, key, type, state, title, cis, envs, release, window_start, window_end, raised_at, version, data)
           ON CONFLICT (change_request_id) DO UPDATE SET key = excluded.key, type = excluded.type,
             state = excluded.state, title = excluded.title, affected_ci_ids = excluded.affected_ci_ids,
             environments = excluded.environments, linked_release_id = excluded.linked_release_id,
             window_start = excluded.window_start, window_end = excluded.window_end, version = excluded.version,
             data = excluded.data`,
    values: unnestColumns(latest.map(changeRow), 13),
  });
}

/** The change requests' rows of a group-committed batch of commands, in one statement. */
export const changeProjection: Projection<Projected<ChangeRequestState, ChangeRequestEvent>> = {
  apply: (tx, items) =>
    saveChanges(
      tx,
      items.flatMap(({ outcome }) => outcome.after.change ?? []),
    ),
};

function changeRow(change: ChangeRequest) {
  return [
    change.changeRequestId,
    change.key,
    change.type,
    change.state,
    change.title,
    JSON.stringify(change.affectedCiIds),
    JSON.stringify(change.environments),
    change.linkedReleaseId,
    ts(change.plannedWindow?.start)?.toISOString() ?? null,
    ts(change.plannedWindow?.end)?.toISOString() ?? null,
    // The raising event's time, which every stored change has (the epoch stands in otherwise, as a
    // rebuild from the events would write it).
    (ts(change.raisedAt) ?? new Date(0)).toISOString(),
    change.version.toString(),
    toBinary(ChangeRequestSchema, change),
  ] as const;
}

export async function saveFreezeWindow(db: Queryable, freeze: FreezeWindow): Promise<void> {
  await db.query(
    `INSERT INTO freeze_windows (freeze_window_id, window_start, window_end, lifted, data) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (freeze_window_id) DO UPDATE SET window_start = $2, window_end = $3, lifted = $4, data = $5`,
    [
      freeze.freezeWindowId,
      ts(freeze.window?.start),
      ts(freeze.window?.end),
      freeze.lifted,
      Buffer.from(toBinary(FreezeWindowSchema, freeze)),
    ],
  );
}

export async function saveTemplate(db: Queryable, template: StandardChangeTemplate): Promise<void> {
  await db.query(
    `INSERT INTO standard_change_templates (template_id, name, retired, data) VALUES ($1, $2, $3, $4)
     ON CONFLICT (template_id) DO UPDATE SET name = $2, retired = $3, data = $4`,
    [
      template.templateId,
      template.name,
      template.retired,
      Buffer.from(toBinary(StandardChangeTemplateSchema, template)),
    ],
  );
}

const changesFrom = (rows: { data: Buffer }[]) => rows.map((row) => fromBinary(ChangeRequestSchema, row.data));
const freezesFrom = (rows: { data: Buffer }[]) => rows.map((row) => fromBinary(FreezeWindowSchema, row.data));

/** Freeze windows, lifted or not, overlapping [start, end). */
export async function freezesOverlapping(
  db: Queryable,
  window: Interval,
  includeLifted = true,
): Promise<FreezeWindow[]> {
  const { rows } = await db.query<{ data: Buffer }>(
    `SELECT data FROM freeze_windows WHERE window_start < $2 AND window_end > $1 AND ($3 OR NOT lifted)
     ORDER BY window_start, freeze_window_id`,
    [new Date(window.start), new Date(window.end), includeLifted],
  );
  return freezesFrom(rows);
}

/** Changes booked on the calendar (scheduled or implementing) in windows overlapping [start, end). */
export async function bookedChangesOverlapping(db: Queryable, window: Interval): Promise<ChangeRequest[]> {
  const { rows } = await db.query<{ data: Buffer }>(
    `SELECT data FROM change_requests WHERE state = ANY($1) AND window_start < $3 AND window_end > $2 ORDER BY key`,
    [BOOKED_STATES, new Date(window.start), new Date(window.end)],
  );
  return changesFrom(rows);
}

/**
 * The changes a deployment of `releaseId` implements: those it names itself (its plan's and the
 * release's links as its start checked them and the release still listed them as it began, so a
 * link not heard of here yet does not lose the reaction, and one made since is not its), none when
 * its whole list is empty; for an event from before deployments named them (none named, the list
 * not said to be whole), those linked to the release.
 */
export async function changesImplementedBy(
  db: Queryable,
  releaseId: string,
  named: { changeRequestIds: readonly string[]; changeRequestIdsRecorded?: boolean | undefined },
): Promise<ChangeRequest[]> {
  const changeIds = named.changeRequestIds;
  if (named.changeRequestIdsRecorded && !changeIds.length) return [];
  const { rows } = changeIds.length
    ? await db.query<{ data: Buffer }>(
        "SELECT data FROM change_requests WHERE change_request_id = ANY($1::uuid[]) ORDER BY key",
        [changeIds.map((id) => id.toLowerCase()).filter(isUuid)],
      )
    : await db.query<{ data: Buffer }>("SELECT data FROM change_requests WHERE linked_release_id = $1 ORDER BY key", [
        releaseId.toLowerCase(),
      ]);
  return changesFrom(rows);
}

export interface ChangeFilter {
  states: ChangeState[];
  types: ChangeType[];
  ciId: string;
  /** Overlapping this window; a bound left out is open (a start alone: windows ending after it). */
  window: Partial<Interval> | undefined;
  linkedReleaseId: string;
  text: string;
}

/** Newest first; `offset` pages through the result. */
/**
 * Change requests newest first; `after`: the (raised_at, change_request_id) of the last one of the
 * previous page (a keyset, so changes raised meanwhile neither repeat nor shift the pages).
 */
export async function listChanges(
  db: Queryable,
  filter: ChangeFilter,
  page: { after: [string, string] | undefined; limit: number },
): Promise<{ change: ChangeRequest; raisedAt: Date }[]> {
  const where: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${params.length}`;
  };
  if (filter.states.length) where.push(`state = ANY(${param(filter.states)})`);
  if (filter.types.length) where.push(`type = ANY(${param(filter.types)})`);
  if (filter.ciId) where.push(`${param(filter.ciId)} = ANY(affected_ci_ids)`);
  if (filter.window?.end !== undefined) where.push(`window_start < ${param(new Date(filter.window.end))}`);
  if (filter.window?.start !== undefined) where.push(`window_end > ${param(new Date(filter.window.start))}`);
  if (filter.linkedReleaseId) where.push(`linked_release_id = ${param(filter.linkedReleaseId)}`);
  if (filter.text) {
    const pattern = param(`%${filter.text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`);
    where.push(`(title ILIKE ${pattern} OR key ILIKE ${pattern})`);
  }
  if (page.after) {
    const [at, id] = [param(page.after[0]), param(page.after[1])];
    where.push(
      `(raised_at < ${at}::timestamptz OR (raised_at = ${at}::timestamptz AND change_request_id > ${id}::uuid))`,
    );
  }
  const { rows } = await db.query<{ data: Buffer; raised_at: Date }>(
    `SELECT data, raised_at FROM change_requests ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
     ORDER BY raised_at DESC, change_request_id LIMIT ${param(page.limit)}`,
    params,
  );
  return rows.map((row) => ({ change: fromBinary(ChangeRequestSchema, row.data), raisedAt: row.raised_at }));
}

/**
 * The change calendar for [start, end): changes with a window in it (rejected and cancelled ones
 * excluded, and those closed after their rejection: they never happened) and active freezes.
 */
export async function calendar(
  db: Queryable,
  window: Interval,
): Promise<{ changes: ChangeRequest[]; freezes: FreezeWindow[] }> {
  const { rows } = await db.query<{ data: Buffer }>(
    `SELECT data FROM change_requests WHERE window_start < $2 AND window_end > $1 AND state <> ALL($3)
     ORDER BY window_start, key`,
    [new Date(window.start), new Date(window.end), [ChangeState.REJECTED, ChangeState.CANCELLED]],
  );
  const changes = changesFrom(rows).filter((c) => !(c.state === ChangeState.CLOSED && c.rejectionReason));
  return { changes, freezes: await freezesOverlapping(db, window, false) };
}

export async function listTemplates(db: Queryable, includeRetired: boolean): Promise<StandardChangeTemplate[]> {
  const { rows } = await db.query<{ data: Buffer }>(
    "SELECT data FROM standard_change_templates WHERE $1 OR NOT retired ORDER BY name, template_id",
    [includeRetired],
  );
  return rows.map((row) => fromBinary(StandardChangeTemplateSchema, row.data));
}

/** Change keys (CHG-2026-0042) from the year's sequence (migration 3), a block at a time. */
export const changeKeys = (pool: Pick<pg.Pool, "query">, blockSize?: number) =>
  new YearlyKeys(pool, { functionName: "rdm_next_change_number", format: changeKey, blockSize });
