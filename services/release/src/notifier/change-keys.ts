import { isMessage, type Message } from "@bufbuild/protobuf";
import { ChangeRequestRaisedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type pg from "pg";

// A change's key (CHG-2026-0042), which only its raise carries, for the titles of its later
// events (notifier_change_keys). A key never changes.

export const namesChangeKey = (type: string) => type === ChangeRequestRaisedSchema.typeName;

/** The key a change's raise names, with its change; undefined for other events. */
export function keyNamed(type: string, message: Message) {
  if (!namesChangeKey(type) || !isMessage(message, ChangeRequestRaisedSchema)) return undefined;
  const { changeRequestId, key } = message;
  return changeRequestId && key ? { changeRequestId, key } : undefined;
}

/** Keeps the changes' keys (one idempotent statement, rows in id order). */
export async function keepChangeKeys(db: Pick<pg.Pool, "query">, keys: ReadonlyMap<string, string>) {
  if (!keys.size) return;
  const rows = [...keys].sort(([a], [b]) => (a < b ? -1 : 1));
  await db.query({
    name: "rdm_keep_change_keys",
    text: `INSERT INTO notifier_change_keys (change_request_id, key)
       SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT (change_request_id) DO NOTHING`,
    values: [rows.map(([id]) => id), rows.map(([, key]) => key)],
  });
}

/** The key of the change a change event is about: named earlier in the fetch, else kept; undefined if not heard of. */
export async function changeKeyOf(
  tx: pg.PoolClient,
  changeRequestId: string,
  earlier: ReadonlyMap<string, string>,
): Promise<string | undefined> {
  const named = earlier.get(changeRequestId);
  if (named) return named;
  const { rows } = await tx.query<{ key: string }>({
    name: "rdm_change_key_of",
    text: "SELECT key FROM notifier_change_keys WHERE change_request_id = $1",
    values: [changeRequestId],
  });
  return rows[0]?.key;
}
