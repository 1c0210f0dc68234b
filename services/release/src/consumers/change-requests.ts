import { createRegistry, type Message } from "@bufbuild/protobuf";
import { namesChangeEnvironments } from "@rdm/domain-kernel/change";
import { textArrayOfJson } from "@rdm/eventstore";
import { type ChunkHandler, type CloudEvent, decodeEvent } from "@rdm/messaging";
import { instantOf } from "@rdm/proto";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { file_rdm_change_v1_events } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { type Release, ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { isUuid } from "@rdm/runtime";
import type pg from "pg";
import { type LinkedChangeState, productionOfThisStay } from "../domain/release.js";
import { isProductionSql } from "../store/deployment-environments.js";
import { indexedRelease } from "../store/releases.js";

const registry = createRegistry(file_rdm_change_v1_events);

/** What every change request event carries (see proto/rdm/change/v1/events.proto). */
type ChangeRequestEvent = Message & {
  metadata?: EventMetadata;
  changeRequestId: string;
  linkedReleaseId: string;
  state: ChangeState;
};

const isChangeRequestEvent = (m: Message): m is ChangeRequestEvent =>
  typeof (m as Partial<ChangeRequestEvent>).changeRequestId === "string" &&
  typeof (m as Partial<ChangeRequestEvent>).state === "number";

/**
 * The state an event sets, or undefined for events without a change request state. Decoded once
 * per event: the consumer reads it for the read model, then for the release reactions.
 */
function stateOf(event: CloudEvent): ChangeRequestState | undefined {
  if (!decodedStates.has(event)) decodedStates.set(event, decodeState(event));
  return decodedStates.get(event);
}

const decodedStates = new WeakMap<CloudEvent, ChangeRequestState | undefined>();

function decodeState(event: CloudEvent) {
  const schema = registry.getMessage(event.type);
  if (!schema) return undefined;
  const message: Message = decodeEvent(schema, event);
  if (!isChangeRequestEvent(message) || !message.changeRequestId) return undefined;
  if (message.state === ChangeState.UNSPECIFIED) return undefined;
  return {
    changeRequestId: message.changeRequestId,
    // Only the change's raise, schedule and detail updates name its environments.
    environments: namesChangeEnvironments(event.type)
      ? [...((message as { environments?: string[] }).environments ?? [])]
      : undefined,
    state: ChangeState[message.state] ?? "UNSPECIFIED",
    /** The change was rejected, by this event or (in a chunk) an earlier one: see loadChangeStates. */
    rejected: message.state === ChangeState.REJECTED,
    linkedReleaseId: message.linkedReleaseId,
    at: instantOf(message.metadata?.occurredAt, event.time),
    version: message.metadata?.streamVersion ?? 0n,
    metadata: message.metadata,
  };
}

type ChangeRequestState = NonNullable<ReturnType<typeof decodeState>>;

/**
 * The release a change event says its change is linked to (a UUID, lowercase), with the event's
 * metadata (who and in which correlation); undefined if none.
 */
export function linkedReleaseOf(event: CloudEvent): { releaseId: string; metadata?: EventMetadata } | undefined {
  const state = stateOf(event);
  const releaseId = state?.linkedReleaseId.toLowerCase();
  return releaseId && isUuid(releaseId) ? { releaseId, metadata: state?.metadata } : undefined;
}

/**
 * One statement for the states of several change requests (one each), with the environments the
 * newest event naming them said (null: none of these events named them; kept as they were).
 */
async function upsertStates(tx: pg.PoolClient, states: ChangeRequestState[]): Promise<void> {
  if (!states.length) return;
  await tx.query(
    `INSERT INTO change_request_states AS c
       (change_request_id, state, linked_release_id, updated_at, version, environments, rejected)
     SELECT id, state, linked, at, version, CASE WHEN envs IS NULL THEN NULL ELSE ${textArrayOfJson("envs")} END,
       rejected
     FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[], $6::jsonb[], $7::boolean[])
       AS k (id, state, linked, at, version, envs, rejected)
     ON CONFLICT (change_request_id) DO UPDATE
       SET state = excluded.state, linked_release_id = excluded.linked_release_id,
           updated_at = excluded.updated_at, version = excluded.version,
           environments = COALESCE(excluded.environments, c.environments),
           rejected = c.rejected OR excluded.rejected
       WHERE c.version <= excluded.version`,
    [
      states.map((s) => s.changeRequestId),
      states.map((s) => s.state),
      states.map((s) => s.linkedReleaseId),
      states.map((s) => s.at),
      states.map((s) => s.version.toString()),
      states.map((s) => (s.environments ? JSON.stringify(s.environments) : null)),
      states.map((s) => s.rejected),
    ],
  );
}

/**
 * Keeps the local read model of change request states (table change_request_states) that the
 * release gates read. Runs in the consumer's transaction, so each event applies exactly once; a
 * stream version older than the stored one (a replay) never moves the state back. Event types
 * without a change request state (freeze windows, templates) and unknown types are skipped.
 */
export async function applyChangeEvent(event: CloudEvent, tx: pg.PoolClient): Promise<void> {
  const state = stateOf(event);
  if (state) await upsertStates(tx, [state]);
}

/** applyChangeEvent for a chunk of events: one statement, with each change's newest state in it. */
export const applyChangeEvents: ChunkHandler = async (events, tx) => {
  const newest = new Map<string, ChangeRequestState>();
  for (const { event } of events) {
    const state = stateOf(event);
    const known = state && newest.get(state.changeRequestId);
    if (!state || (known && known.version > state.version)) continue;
    // A later event naming no environments keeps what an earlier one of the chunk named; a
    // rejection earlier in the chunk is kept too.
    newest.set(state.changeRequestId, {
      ...state,
      environments: state.environments ?? known?.environments,
      rejected: state.rejected || (known?.rejected ?? false),
    });
  }
  await upsertStates(tx, [...newest.values()]);
};

/**
 * The release's linked change requests with the states this service has heard of (undefined: none
 * yet), as the gates read them: a change closed after its rejection is REJECTED (it never
 * happened), not CLOSED, which counts as authorized.
 */
export async function loadChangeStates(
  db: Pick<pg.Pool, "query">,
  release: Release | undefined,
  production: readonly string[] = release ? productionOfThisStay(release) : [],
): Promise<LinkedChangeState[]> {
  const ids = release?.linkedChangeRequestIds ?? [];
  if (!ids.length) return [];
  // With the production environments each names: those `production` lists (a success's word: a
  // new one's, or the newest of this stay in DEPLOYMENT), else those deployment_environments says are.
  const { rows } = await db.query<{ change_request_id: string; state: string; production_environments: string[] }>(
    `SELECT s.change_request_id, CASE WHEN s.rejected AND s.state = 'CLOSED' THEN 'REJECTED' ELSE s.state END AS state,
       ARRAY(SELECT env FROM unnest(COALESCE(s.environments, '{}')) AS env
             WHERE CASE WHEN cardinality($2::text[]) > 0 THEN env = ANY($2::text[])
                   ELSE EXISTS (SELECT 1 FROM deployment_environments e WHERE e.name = env AND ${isProductionSql("e")}) END
             ORDER BY env) AS production_environments
     FROM change_request_states s
     WHERE s.change_request_id = ANY($1)`,
    [ids, production],
  );
  const known = new Map(rows.map((r) => [r.change_request_id, r]));
  return ids.map((id) => ({
    changeRequestId: id,
    state: known.get(id)?.state,
    productionEnvironments: known.get(id)?.production_environments ?? [],
  }));
}

/**
 * The linked changes' states for an unlink to re-check a release in DEPLOYMENT with (the change
 * may have held it there); undefined in every other phase, read nothing. The caller holds the
 * release's reaction turn (lockReleaseReactions), so a change state committed meanwhile is seen
 * here or by that state's own reaction.
 */
export async function changeStatesIfDeploying(
  db: Pick<pg.Pool, "query">,
  release: Release | undefined,
): Promise<LinkedChangeState[] | undefined> {
  return release?.phase === ReleasePhase.DEPLOYMENT ? loadChangeStates(db, release) : undefined;
}

/**
 * The release that holds a change request: the one its events say it is linked to, when that
 * release lists it too. "" when none, not heard of, or a release named at RaiseChange that never
 * linked it back (unknown here, or closed before it could): such a link gives way to another
 * release's, and the change takes that one (its ChangeRequestReleaseLinked names the previous).
 */
export async function changeHeldBy(
  db: Pick<pg.Pool, "query">,
  changeRequestId: string,
  heard: ChangeAsHeard,
): Promise<string> {
  return heard.linkedTo && (await releaseLists(db, heard.linkedTo, changeRequestId)) ? heard.linkedTo : "";
}

/** Whether a release this service knows lists the change request among its linked ones. */
export async function releaseLists(
  db: Pick<pg.Pool, "query">,
  releaseId: string,
  changeRequestId: string,
): Promise<boolean> {
  const release = await indexedRelease(db, releaseId);
  return release?.linkedChangeRequestIds.some((id) => id.toLowerCase() === changeRequestId.toLowerCase()) ?? false;
}

/**
 * A change request as its events told this service: its state (a ChangeState name; undefined: not
 * heard of) and the release it is linked to ("" when none or not heard of).
 */
export interface ChangeAsHeard {
  state: string | undefined;
  linkedTo: string;
}

export async function changeAsHeard(db: Pick<pg.Pool, "query">, changeRequestId: string): Promise<ChangeAsHeard> {
  const { rows } = await db.query<{ state: string; linked_release_id: string }>(
    "SELECT state, linked_release_id FROM change_request_states WHERE change_request_id = $1",
    [changeRequestId.toLowerCase()],
  );
  return { state: rows[0]?.state, linkedTo: rows[0]?.linked_release_id ?? "" };
}
