import type { JsonObject, Message } from "@bufbuild/protobuf";
import { textArrayOfJson } from "@rdm/eventstore";
import {
  DeploymentApprovalGrantedSchema,
  DeploymentCancelledSchema,
  DeploymentFailedSchema,
  DeploymentPlannedSchema,
  DeploymentRolledBackSchema,
  DeploymentScheduledSchema,
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type { Release } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import { indexedRelease } from "../store/releases.js";

// A deployment's changes, for subscriptions filtered by change: its plan names the changes linked
// to it, its start (and outcomes) those its gates checked; its other events (approval, steps,
// pause, cancel, rollback started) name none and match by what the notifier kept of the earlier
// ones (notifier_deployment_changes). A change once named stays the deployment's (the list only
// grows, so a redelivered event changes nothing) until its begin (DeploymentStarted) says which
// it implements: from then on the deployment's changes are the begin's, and what its outcomes
// name (the same), so a change unlinked before the begin no longer hears of it. Before its start
// (plan, approval, a cancellation before it), a deployment's events also match the changes its
// start names when the same fetch holds it, else those linked to its release as the release
// service knows them when the notifier reads the event: the changes the start's gates will check.
// For subscriptions filtered by service, a deployment's events are also about the targets its
// plan names (kept as its changes are: notifier_deployment_changes.target_ci_ids) and the
// configuration items its release's package maps its artifacts to (deploymentServicesOf).

const NAMING_SCHEMAS = [
  DeploymentPlannedSchema,
  DeploymentScheduledSchema,
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
];

/** The deployment events that name its changes: the plan (`linked_change_ids`), the others `change_request_ids`. */
const CHANGE_NAMING: ReadonlySet<string> = new Set(NAMING_SCHEMAS.map((schema) => schema.typeName));

/** Those that name the changes its start checked: every one after the plan. */
const STARTED: ReadonlySet<string> = new Set(NAMING_SCHEMAS.slice(1).map((schema) => schema.typeName));

/** Those that name the changes it implements, when they say so (`change_request_ids_recorded`): the begin and the outcomes. */
const BEGUN: ReadonlySet<string> = new Set(NAMING_SCHEMAS.slice(2).map((schema) => schema.typeName));

/** The deployment events that may come before its start; every other one comes after it. */
const MAYBE_BEFORE_START: ReadonlySet<string> = new Set(
  [DeploymentPlannedSchema, DeploymentApprovalGrantedSchema, DeploymentCancelledSchema].map(
    (schema) => schema.typeName,
  ),
);

export const namesDeploymentChanges = (type: string) => CHANGE_NAMING.has(type);

/** Whether the event is a deployment's start (DeploymentScheduled), which names the changes it checked. */
export const startsDeployment = (type: string) => type === DeploymentScheduledSchema.typeName;

/**
 * What a deployment's events said of it: the changes they named, whether it has started, and
 * whether it has begun (then `changes` are those it implements, and nothing earlier adds to them);
 * and the targets its plan named.
 */
export interface DeploymentSaid {
  changes: Set<string>;
  started: boolean;
  begun: boolean;
  targets: Set<string>;
}

export const nothingSaid = (): DeploymentSaid => ({
  changes: new Set(),
  started: false,
  begun: false,
  targets: new Set(),
});

/**
 * The changes a deployment event names, with its deployment, and for its plan the targets of its
 * steps; undefined for other events and a plan naming neither.
 */
export function changesNamed(type: string, message: Message) {
  if (!CHANGE_NAMING.has(type)) return undefined;
  const named = message as {
    deploymentId?: string;
    linkedChangeIds?: string[];
    changeRequestIds?: string[];
    changeRequestIdsRecorded?: boolean;
    steps?: { targetCiIds: string[] }[];
  };
  const changeRequestIds =
    (type === DeploymentPlannedSchema.typeName ? named.linkedChangeIds : named.changeRequestIds) ?? [];
  const started = STARTED.has(type);
  // Outcomes written before the begin recorded its changes name the plan's or the start's.
  const begun = BEGUN.has(type) && named.changeRequestIdsRecorded === true;
  const targetCiIds = [...new Set(named.steps?.flatMap((step) => step.targetCiIds) ?? [])];
  return named.deploymentId && (changeRequestIds.length || started || targetCiIds.length)
    ? { deploymentId: named.deploymentId, changeRequestIds, started, begun, targetCiIds }
    : undefined;
}

/** Adds what one event named to what the deployment's earlier events said (in stream order). */
export function addSaid(said: DeploymentSaid, named: NonNullable<ReturnType<typeof changesNamed>>) {
  if (named.begun && !said.begun) said.changes.clear();
  if (named.begun || !said.begun) for (const id of named.changeRequestIds) said.changes.add(id);
  said.started ||= named.started;
  said.begun ||= named.begun;
  for (const id of named.targetCiIds) said.targets.add(id);
}

/**
 * Adds each deployment's changes and targets to what was kept of it, and that it started; a begin
 * replaces the changes kept before it, and what comes before a begin (a redelivery) adds no change
 * after it (one idempotent statement, rows in id order).
 */
export async function keepDeploymentChanges(
  db: Pick<pg.Pool, "query">,
  byDeployment: ReadonlyMap<string, DeploymentSaid>,
) {
  if (!byDeployment.size) return;
  const rows = [...byDeployment].sort(([a], [b]) => (a < b ? -1 : 1));
  await db.query({
    name: "rdm_keep_deployment_changes",
    text: `INSERT INTO notifier_deployment_changes AS t (deployment_id, change_request_ids, started, begun, target_ci_ids)
       SELECT id, ARRAY(SELECT DISTINCT unnest(${textArrayOfJson("ids")}) ORDER BY 1), started, begun,
         ARRAY(SELECT DISTINCT unnest(${textArrayOfJson("targets")}) ORDER BY 1)
       FROM unnest($1::text[], $2::jsonb[], $3::boolean[], $4::boolean[], $5::jsonb[]) AS k (id, ids, started, begun, targets)
       ON CONFLICT (deployment_id) DO UPDATE
         SET change_request_ids = CASE
               WHEN EXCLUDED.begun AND NOT t.begun THEN EXCLUDED.change_request_ids
               WHEN t.begun AND NOT EXCLUDED.begun THEN t.change_request_ids
               ELSE ARRAY(SELECT DISTINCT unnest(t.change_request_ids || EXCLUDED.change_request_ids) ORDER BY 1)
             END,
           started = t.started OR EXCLUDED.started,
           begun = t.begun OR EXCLUDED.begun,
           target_ci_ids = ARRAY(SELECT DISTINCT unnest(t.target_ci_ids || EXCLUDED.target_ci_ids) ORDER BY 1)
         WHERE (EXCLUDED.begun AND NOT t.begun)
           OR (EXCLUDED.started AND NOT t.started)
           OR (NOT t.change_request_ids @> EXCLUDED.change_request_ids AND (EXCLUDED.begun OR NOT t.begun))
           OR NOT t.target_ci_ids @> EXCLUDED.target_ci_ids`,
    values: [
      rows.map(([id]) => id),
      rows.map(([, said]) => JSON.stringify([...said.changes])),
      rows.map(([, said]) => said.started),
      rows.map(([, said]) => said.begun),
      rows.map(([, said]) => JSON.stringify([...said.targets])),
    ],
  });
}

/** What a fetch tells of its deployments beyond the event at hand. */
export interface FetchedDeployments {
  /** What its earlier events said, by deployment id. */
  said: ReadonlyMap<string, DeploymentSaid>;
  /** The changes each start in the fetch names, later ones included, by deployment id. */
  starts: ReadonlyMap<string, readonly string[]>;
  /** The releases read so far, by release id. */
  releases: Map<string, Promise<Release | undefined>>;
  /** What the notifier kept of each deployment before the fetch, read so far, by deployment id. */
  kept: Map<string, Promise<KeptDeployment | undefined>>;
}

interface KeptDeployment {
  change_request_ids: string[];
  started: boolean;
  begun: boolean;
  target_ci_ids: string[];
}

/** What `cache` holds for `key`, read by `read` the first time the fetch asks for it. */
function readOnce<T>(cache: Map<string, Promise<T>>, key: string, read: () => Promise<T>): Promise<T> {
  let value = cache.get(key);
  if (!value) {
    value = read();
    cache.set(key, value);
  }
  return value;
}

/**
 * What the notifier kept of a deployment before this fetch (undefined: nothing), read once a fetch:
 * the fetch's own events are kept only at its end (SaidSoFar.keep), and a deployment's events share
 * one partition, so no other fetch writes it meanwhile.
 */
const keptOf = (tx: pg.PoolClient, fetched: FetchedDeployments, deploymentId: string) =>
  readOnce(fetched.kept, deploymentId, async () => {
    const { rows } = await tx.query<KeptDeployment>({
      name: "rdm_deployment_kept",
      text: `SELECT change_request_ids, started, begun, target_ci_ids FROM notifier_deployment_changes
             WHERE deployment_id = $1`,
      values: [deploymentId],
    });
    return rows[0];
  });

/** The release as the release service's index holds it now (undefined: unknown), read once a fetch. */
const releaseNow = (tx: pg.PoolClient, fetched: FetchedDeployments, releaseId: string) =>
  readOnce(fetched.releases, releaseId, () => indexedRelease(tx, releaseId));

/**
 * The configuration items a deployment event is about beyond those it names: the targets its
 * plan named (this fetch's, and those kept), and those its release maps its package's artifacts
 * to: the services it deploys, as the KPIs count them (the package is frozen once the release
 * leaves BUILD_AND_TEST, before any deployment). Undefined for other events.
 */
export async function deploymentServicesOf(
  tx: pg.PoolClient,
  event: { type: string; json: JsonObject },
  fetched: FetchedDeployments,
): Promise<string[] | undefined> {
  const { deploymentId, releaseId } = event.json;
  if (!event.type.startsWith("rdm.deployment.v1.") || typeof deploymentId !== "string" || !deploymentId)
    return undefined;
  const kept = await keptOf(tx, fetched, deploymentId);
  const targets = [...(kept?.target_ci_ids ?? []), ...(fetched.said.get(deploymentId)?.targets ?? [])];
  if (typeof releaseId !== "string" || !releaseId) return targets;
  const release = await releaseNow(tx, fetched, releaseId);
  return [...targets, ...(release?.package.map((artifact) => artifact.configurationItemId).filter(Boolean) ?? [])];
}

/**
 * The changes of the deployment a deployment event is about: what the fetch's earlier events
 * named and what the notifier kept; before its start also those the start will check. Undefined
 * for other events.
 */
export async function deploymentChangesOf(
  tx: pg.PoolClient,
  event: { type: string; json: JsonObject },
  fetched: FetchedDeployments,
): Promise<string[] | undefined> {
  const { deploymentId, releaseId, changeRequestIds, changeRequestIdsRecorded } = event.json;
  if (!event.type.startsWith("rdm.deployment.v1.") || typeof deploymentId !== "string" || !deploymentId)
    return undefined;
  // A begin or an outcome that names what the deployment implements: those alone.
  if (BEGUN.has(event.type) && changeRequestIdsRecorded === true)
    return Array.isArray(changeRequestIds) ? changeRequestIds.filter((id) => typeof id === "string") : [];
  // Once begun, the begin's changes alone: this fetch's if it holds the begin, else those kept.
  const said = fetched.said.get(deploymentId);
  if (said?.begun) return [...said.changes];
  const kept = await keptOf(tx, fetched, deploymentId);
  if (kept?.begun) return kept.change_request_ids;
  const changes = [...(kept?.change_request_ids ?? []), ...(said?.changes ?? [])];
  if (kept?.started || said?.started || !MAYBE_BEFORE_START.has(event.type)) return changes;
  const start = fetched.starts.get(deploymentId);
  if (start) return [...changes, ...start];
  if (typeof releaseId !== "string" || !releaseId) return changes;
  const release = await releaseNow(tx, fetched, releaseId);
  return [...changes, ...(release?.linkedChangeRequestIds ?? [])];
}
