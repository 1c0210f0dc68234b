import type { JsonObject, Message } from "@bufbuild/protobuf";
import { textArrayOfJson } from "@rdm/eventstore";
import {
  DeploymentFailedSchema,
  DeploymentPlannedSchema,
  DeploymentRolledBackSchema,
  DeploymentScheduledSchema,
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type pg from "pg";

// A deployment's changes, for subscriptions filtered by change: its plan names the changes linked
// to it, its start (and outcomes) those its gates checked; its other events (approval, steps,
// pause, cancel, rollback started) name none and match by what the notifier kept of the earlier
// ones (notifier_deployment_changes). A change once named stays the deployment's: the list only
// grows, so the order the notifier reads them in does not matter.

/** The deployment events that name its changes: the plan (`linked_change_ids`), the others `change_request_ids`. */
const CHANGE_NAMING: ReadonlySet<string> = new Set(
  [
    DeploymentPlannedSchema,
    DeploymentScheduledSchema,
    DeploymentStartedSchema,
    DeploymentSucceededSchema,
    DeploymentFailedSchema,
    DeploymentRolledBackSchema,
  ].map((schema) => schema.typeName),
);

export const namesDeploymentChanges = (type: string) => CHANGE_NAMING.has(type);

/** The changes a deployment event names, with its deployment; undefined for other events and when it names none. */
export function changesNamed(type: string, message: Message) {
  if (!CHANGE_NAMING.has(type)) return undefined;
  const named = message as { deploymentId?: string; linkedChangeIds?: string[]; changeRequestIds?: string[] };
  const changeRequestIds =
    (type === DeploymentPlannedSchema.typeName ? named.linkedChangeIds : named.changeRequestIds) ?? [];
  return named.deploymentId && changeRequestIds.length
    ? { deploymentId: named.deploymentId, changeRequestIds }
    : undefined;
}

/** Adds each deployment's changes to what was kept of it (one idempotent statement, rows in id order). */
export async function keepDeploymentChanges(
  db: Pick<pg.Pool, "query">,
  byDeployment: ReadonlyMap<string, ReadonlySet<string>>,
) {
  if (!byDeployment.size) return;
  const rows = [...byDeployment].sort(([a], [b]) => (a < b ? -1 : 1));
  await db.query({
    name: "rdm_keep_deployment_changes",
    text: `INSERT INTO notifier_deployment_changes AS t (deployment_id, change_request_ids)
       SELECT id, ARRAY(SELECT DISTINCT unnest(${textArrayOfJson("ids")}) ORDER BY 1)
       FROM unnest($1::text[], $2::jsonb[]) AS k (id, ids)
       ON CONFLICT (deployment_id) DO UPDATE
         SET change_request_ids = ARRAY(SELECT DISTINCT unnest(t.change_request_ids || EXCLUDED.change_request_ids) ORDER BY 1)
         WHERE NOT t.change_request_ids @> EXCLUDED.change_request_ids`,
    values: [rows.map(([id]) => id), rows.map(([, ids]) => JSON.stringify([...ids]))],
  });
}

/**
 * The changes of the deployment a deployment event is about: what the fetch's earlier events
 * named (by deployment id) and what the notifier kept. Undefined for other events.
 */
export async function deploymentChangesOf(
  tx: pg.PoolClient,
  event: { type: string; json: JsonObject },
  earlier: ReadonlyMap<string, ReadonlySet<string>>,
): Promise<string[] | undefined> {
  const { deploymentId } = event.json;
  if (!event.type.startsWith("rdm.deployment.v1.") || typeof deploymentId !== "string" || !deploymentId)
    return undefined;
  const { rows } = await tx.query<{ change_request_ids: string[] }>({
    name: "rdm_deployment_changes_of",
    text: "SELECT change_request_ids FROM notifier_deployment_changes WHERE deployment_id = $1",
    values: [deploymentId],
  });
  return [...(rows[0]?.change_request_ids ?? []), ...(earlier.get(deploymentId) ?? [])];
}
