import { type ChunkHandler, type CloudEvent, decodeEvent, type EventHandler } from "@rdm/messaging";
import {
  ChangeRequestRaisedSchema,
  ChangeRequestReleaseUnlinkedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { ReleasePhase, ReleaseStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import { lockReleaseReactions, releaseCommand } from "../store/releases.js";
import {
  applyChangeEvent,
  applyChangeEvents,
  changeLinkedTo,
  linkedReleaseOf,
  loadChangeStates,
} from "./change-requests.js";
import { type ReleaseReactionDeps, reactOnRelease } from "./release-reaction.js";

interface LinkReaction {
  releaseId: string;
  changeRequestId: string;
  metadata?: EventMetadata | undefined;
  command: "linkChangeRequest" | "unlinkChangeRequest";
}

/**
 * What a change event asks of a release: a change raised with a linked release is linked there
 * too (a link made on the change side); a change that answers another release's link with "not
 * linked to you, linked to mine" (ChangeRequestReleaseUnlinked naming both) is unlinked from that
 * other release. The change's other link events mirror the release's own links and unlinks: they
 * ask nothing back, so the two mirrors never feed each other.
 */
function linkReactionOf(event: CloudEvent): LinkReaction | undefined {
  if (event.type === ChangeRequestRaisedSchema.typeName) {
    const raised = decodeEvent(ChangeRequestRaisedSchema, event);
    if (!raised.linkedReleaseId) return undefined;
    return {
      releaseId: raised.linkedReleaseId,
      changeRequestId: raised.changeRequestId,
      metadata: raised.metadata,
      command: "linkChangeRequest",
    };
  }
  if (event.type === ChangeRequestReleaseUnlinkedSchema.typeName) {
    const unlinked = decodeEvent(ChangeRequestReleaseUnlinkedSchema, event);
    if (!unlinked.linkedReleaseId || !unlinked.releaseId || unlinked.linkedReleaseId === unlinked.releaseId)
      return undefined;
    return {
      releaseId: unlinked.releaseId,
      changeRequestId: unlinked.changeRequestId,
      metadata: unlinked.metadata,
      command: "unlinkChangeRequest",
    };
  }
  return undefined;
}

/**
 * Applies a change event's link reaction to its release, in the consumer's transaction, after
 * the change's state is in the read model. It acts only while the change still says so (a replay
 * of an old event never links a change that moved on, nor unlinks one linked there since). A
 * refusal (a release this service does not know, or one closed) is logged and skipped.
 */
async function reactToChangeLink(event: CloudEvent, tx: pg.PoolClient, deps: ReleaseReactionDeps): Promise<void> {
  const reaction = linkReactionOf(event);
  if (!reaction?.changeRequestId || !reaction.releaseId) return;
  const releaseId = reaction.releaseId.toLowerCase();
  const changeRequestId = reaction.changeRequestId.toLowerCase();
  const linkedNow = (await changeLinkedTo(tx, changeRequestId)).toLowerCase();
  const stillSo = reaction.command === "linkChangeRequest" ? linkedNow === releaseId : linkedNow !== releaseId;
  if (!stillSo) return;
  await reactOnRelease(
    deps,
    tx,
    { event, metadata: reaction.metadata },
    releaseCommand(releaseId, () => ({ kind: reaction.command, changeRequestId, mirror: true })),
    { reaction: "change link", about: { releaseId, changeRequestId } },
  );
}

/**
 * A release in DEPLOYMENT whose linked changes' states moved: one whose package already succeeded
 * in production moves on if its gate now holds (a change IMPLEMENTED by that very deployment is
 * told after it, on another topic). Releases in any other phase are passed by without a read.
 */
async function reactToChangeStates(events: CloudEvent[], tx: pg.PoolClient, deps: ReleaseReactionDeps) {
  // Each release's last event in the chunk: the cause of its reaction.
  const causes = new Map<string, { event: CloudEvent; metadata: EventMetadata | undefined }>();
  for (const event of events) {
    const link = linkedReleaseOf(event);
    if (link) causes.set(link.releaseId, { event, metadata: link.metadata });
  }
  if (!causes.size) return;
  const { rows } = await tx.query<{ release_id: string }>(
    "SELECT release_id FROM release_index WHERE release_id = ANY($1::uuid[]) AND phase = $2 AND status = $3",
    [[...causes.keys()], ReleasePhase.DEPLOYMENT, ReleaseStatus.ACTIVE],
  );
  // In one order, so two chunks locking the same releases wait rather than deadlock.
  for (const releaseId of rows.map((row) => row.release_id).sort()) {
    await lockReleaseReactions(tx, releaseId);
    await reactOnRelease(
      deps,
      tx,
      causes.get(releaseId) as { event: CloudEvent; metadata: EventMetadata | undefined },
      releaseCommand(releaseId, async (state) => ({
        kind: "moveOnAfterProduction",
        changes: await loadChangeStates(tx, state.release),
      })),
      { reaction: "release", about: { releaseId } },
    );
  }
}

/**
 * The consumer of rdm.change.events.v1: the change request states the gates read
 * (applyChangeEvent), the links the change asks of a release (reactToChangeLink), then what the
 * new states let a release do (reactToChangeStates), in one transaction.
 */
export function changeEventConsumer(deps: ReleaseReactionDeps): { handle: EventHandler; handleChunk: ChunkHandler } {
  return {
    handle: async (event, tx) => {
      await applyChangeEvent(event, tx);
      await reactToChangeLink(event, tx, deps);
      await reactToChangeStates([event], tx, deps);
    },
    handleChunk: async (events, tx) => {
      await applyChangeEvents(events, tx);
      for (const { event } of events) await reactToChangeLink(event, tx, deps);
      await reactToChangeStates(
        events.map(({ event }) => event),
        tx,
        deps,
      );
    },
  };
}
