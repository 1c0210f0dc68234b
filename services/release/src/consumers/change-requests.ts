import { createRegistry, fromBinary, type Message } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type CloudEvent, PermanentError } from "@rdm/messaging";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { file_rdm_change_v1_events } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";

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
 * Keeps the local read model of change request states (table change_request_states) that the
 * release gates read. Runs in the consumer's transaction, so each event applies exactly once; a
 * stream version older than the stored one (a replay) never moves the state back. Event types
 * without a change request state (freeze windows, templates) and unknown types are skipped.
 */
export async function applyChangeEvent(event: CloudEvent, tx: pg.PoolClient): Promise<void> {
  const schema = registry.getMessage(event.type);
  if (!schema) return;
  let message: Message;
  try {
    message = fromBinary(schema, event.data);
  } catch (error) {
    throw new PermanentError(`cannot decode ${event.type}: ${(error as Error).message}`);
  }
  if (!isChangeRequestEvent(message) || !message.changeRequestId) return;
  const state = ChangeState[message.state] ?? "UNSPECIFIED";
  if (message.state === ChangeState.UNSPECIFIED) return;
  const version = message.metadata?.streamVersion ?? 0n;
  const at = message.metadata?.occurredAt ? timestampDate(message.metadata.occurredAt) : event.time;
  await tx.query(
    `INSERT INTO change_request_states AS c (change_request_id, state, linked_release_id, updated_at, version)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (change_request_id) DO UPDATE SET state = $2, linked_release_id = $3, updated_at = $4, version = $5
       WHERE c.version <= $5`,
    [message.changeRequestId, state, message.linkedReleaseId, at, version.toString()],
  );
}
