import { isMessage, type JsonObject, type Message } from "@bufbuild/protobuf";
import { ENVIRONMENT_NAMING_SCHEMAS } from "@rdm/domain-kernel/change";
import { textArrayOfJson } from "@rdm/eventstore";
import type pg from "pg";
import { changeIdOf } from "../domain/subscription/matching.js";
import { isProductionSql } from "../store/deployment-environments.js";

// A change's environments, for subscriptions filtered by environment: only a change's raise,
// schedule and detail updates name them; its other events (submitted, approved, rejected, …)
// match by what the notifier last read on the change's stream (notifier_change_environments). A
// change naming none is production's, as the change service has it ("empty: production").

/** The environments a change event names, with its change and stream version; undefined for other events. */
export function environmentsNamed(type: string, message: Message) {
  const schema = ENVIRONMENT_NAMING_SCHEMAS.find((s) => s.typeName === type);
  if (!schema || !isMessage(message, schema) || !message.changeRequestId) return undefined;
  const { changeRequestId, environments } = message;
  return { changeRequestId, environments, version: message.metadata?.streamVersion ?? 0n };
}
export type NamedEnvironments = NonNullable<ReturnType<typeof environmentsNamed>>;

/**
 * Keeps each change's newest environments among `named`, for the change's later events, in the
 * stream's order (its version decides, so the statement is idempotent and needs no transaction
 * of its own). Rows go in id order, so two writers never wait on each other in a cycle.
 */
export async function keepChangeEnvironments(db: Pick<pg.Pool, "query">, named: NamedEnvironments[]) {
  const newest = new Map<string, NamedEnvironments>();
  for (const n of named) {
    const known = newest.get(n.changeRequestId);
    if (!known || known.version <= n.version) newest.set(n.changeRequestId, n);
  }
  if (!newest.size) return;
  const rows = [...newest.values()].sort((a, b) => (a.changeRequestId < b.changeRequestId ? -1 : 1));
  await db.query({
    name: "rdm_keep_change_environments",
    text: `INSERT INTO notifier_change_environments AS t (change_request_id, environments, version)
       SELECT id, ${textArrayOfJson("envs")}, version FROM unnest($1::text[], $2::jsonb[], $3::bigint[]) AS k (id, envs, version)
       ON CONFLICT (change_request_id) DO UPDATE SET environments = EXCLUDED.environments, version = EXCLUDED.version
         WHERE t.version <= EXCLUDED.version`,
    values: [
      rows.map((n) => n.changeRequestId),
      rows.map((n) => JSON.stringify(n.environments)),
      rows.map((n) => n.version.toString()),
    ],
  });
}

/** The environments the deployment service defines as production. */
async function productionEnvironments(tx: pg.PoolClient): Promise<string[]> {
  const { rows } = await tx.query<{ name: string }>(
    `SELECT e.name FROM deployment_environments e WHERE ${isProductionSql("e")} ORDER BY e.name`,
  );
  return rows.map((row) => row.name);
}

/** What a fetch's change events have said of their changes' environments so far. */
export interface EnvironmentsSoFar {
  /** The environments this event names, if it is one that names them. */
  named: NamedEnvironments | undefined;
  /** What the fetch's earlier events named, by change id. */
  earlier: ReadonlyMap<string, string[]>;
}

/**
 * The environments of the change a change event is about (whatever environment it names): its own
 * list when it is one that names them (empty: production's); else what an earlier event of the
 * fetch said, else what the notifier last kept. Undefined for other events and for a change not
 * heard of.
 */
export async function changeEnvironmentsOf(
  tx: pg.PoolClient,
  event: { type: string; json: JsonObject },
  { named, earlier }: EnvironmentsSoFar,
): Promise<string[] | undefined> {
  const changeRequestId = changeIdOf(event.type, event.json);
  if (!changeRequestId) return undefined;
  let environments = named?.environments;
  if (!named) {
    environments = earlier.get(changeRequestId);
    if (!environments) {
      const { rows } = await tx.query<{ environments: string[] }>(
        "SELECT environments FROM notifier_change_environments WHERE change_request_id = $1",
        [changeRequestId],
      );
      environments = rows[0]?.environments;
    }
  }
  if (!environments) return undefined;
  return environments.length ? environments : productionEnvironments(tx);
}
