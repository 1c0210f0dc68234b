import { type ChunkHandler, type CloudEvent, decodeEvent, type EventHandler } from "@rdm/messaging";
import {
  ChangeRequestRaisedSchema,
  ChangeRequestReleaseUnlinkedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { ReleasePhase, ReleaseStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { isUuid } from "@rdm/runtime";
import type pg from "pg";
import type { ReleaseCommand } from "../domain/release.js";
import { lockReleaseReactions, releaseCommand } from "../store/releases.js";
import {
  applyChangeEvent,
  applyChangeEvents,
  changeAsHeard,
  changeStatesIfDeploying,
  linkedReleaseOf,
  loadChangeStates,
  releaseLists,
} from "./change-requests.js";
import { type ReleaseReactionDeps, reactOnRelease } from "./release-reaction.js";

type LinkReaction = {
  changeRequestId: string;
  metadata?: EventMetadata | undefined;
} & (
  | { command: "link"; releaseId: string }
  /** The change answered `releaseId`'s link with `keeper`, the release it is linked to. */
  | { command: "answer"; releaseId: string; keeper: string }
  /** The change was closed when `releaseId` linked it: it refused the link. */
  | { command: "refused"; releaseId: string }
  /** The change's link was cleared (its release unlinked it). */
  | { command: "cleared" }
);

/**
 * What a change event asks of a release: a change raised with a linked release is linked there
 * too (a link made on the change side); a change that answers another release's link with "not
 * linked to you, linked to mine" (ChangeRequestReleaseUnlinked naming both), or with "closed"
 * (refused_closed), is unlinked from that other release; a change whose link is cleared may be
 * linked again where an answer was passed by (reactToChangeLink). The change's other link events
 * mirror the release's own links and unlinks: they ask nothing back, so the two mirrors never
 * feed each other.
 */
function linkReactionOf(event: CloudEvent): LinkReaction | undefined {
  if (event.type === ChangeRequestRaisedSchema.typeName) {
    const raised = decodeEvent(ChangeRequestRaisedSchema, event);
    if (!raised.linkedReleaseId || !raised.changeRequestId) return undefined;
    return { ...ids(raised), releaseId: raised.linkedReleaseId.toLowerCase(), command: "link" };
  }
  if (event.type === ChangeRequestReleaseUnlinkedSchema.typeName) {
    const unlinked = decodeEvent(ChangeRequestReleaseUnlinkedSchema, event);
    if (!unlinked.changeRequestId || !unlinked.releaseId) return undefined;
    if (unlinked.refusedClosed)
      return { ...ids(unlinked), releaseId: unlinked.releaseId.toLowerCase(), command: "refused" };
    if (!unlinked.linkedReleaseId) return { ...ids(unlinked), command: "cleared" };
    if (unlinked.linkedReleaseId === unlinked.releaseId) return undefined;
    return {
      ...ids(unlinked),
      releaseId: unlinked.releaseId.toLowerCase(),
      keeper: unlinked.linkedReleaseId.toLowerCase(),
      command: "answer",
    };
  }
  return undefined;
}

const ids = (event: { changeRequestId: string; metadata?: EventMetadata | undefined }) => ({
  changeRequestId: event.changeRequestId.toLowerCase(),
  metadata: event.metadata,
});

/**
 * Applies a change event's link reaction to its release, in the consumer's transaction, after
 * the change's state is in the read model. It acts only while the change still says so (a replay
 * of an old event never links a change that moved on, nor unlinks one linked there since). A
 * refusal (a release this service does not know, or one closed) is logged and skipped.
 *
 * An answer is stale when its keeper no longer lists the change: the keeper's unlink, made before
 * this release linked it, was still on its way to the change service (another partition). The
 * answer is then passed by and the release noted; once that unlink clears the change's link, each
 * noted release says its link again (relinked) and the change takes the first. Unlinking it
 * instead left the change linked to nothing.
 */
async function reactToChangeLink(event: CloudEvent, tx: pg.PoolClient, deps: ReleaseReactionDeps): Promise<void> {
  const reaction = linkReactionOf(event);
  if (!reaction) return;
  const { changeRequestId, metadata } = reaction;
  for (const { releaseId, command } of await linkCommands(reaction, tx)) {
    await reactOnRelease(
      deps,
      tx,
      { event, metadata },
      releaseCommand(releaseId, async (state) =>
        command.kind === "unlinkChangeRequest"
          ? { ...command, changes: await changeStatesIfDeploying(tx, state.release) }
          : command,
      ),
      {
        reaction: "change link",
        about: { releaseId, changeRequestId },
      },
    );
  }
}

/** The commands a link reaction asks of releases now (see reactToChangeLink). */
async function linkCommands(
  reaction: LinkReaction,
  tx: pg.PoolClient,
): Promise<{ releaseId: string; command: ReleaseCommand }[]> {
  const { changeRequestId } = reaction;
  if (reaction.command === "cleared") {
    // Every noted release says its link again, whatever links the change took since (later events
    // of a chunk): the change keeps the first it hears of and answers the others, which unlink it.
    const noted = await takeRelinks(tx, changeRequestId);
    return noted.map((releaseId) => ({
      releaseId,
      command: { kind: "linkChangeRequest", changeRequestId, relink: true },
    }));
  }
  const { releaseId } = reaction;
  const unlinkFor = (reason: string) => [
    { releaseId, command: { kind: "unlinkChangeRequest", changeRequestId, mirror: true, reason } as const },
  ];
  // Closed, the change takes no link again: no answer can be stale, and nothing is noted.
  if (reaction.command === "refused")
    return (await releaseLists(tx, releaseId, changeRequestId))
      ? unlinkFor(`change request ${changeRequestId} was closed before the link reached it`)
      : [];
  const linkedNow = (await changeAsHeard(tx, changeRequestId)).linkedTo.toLowerCase();
  if (reaction.command === "link")
    return linkedNow === releaseId
      ? [{ releaseId, command: { kind: "linkChangeRequest", changeRequestId, mirror: true } }]
      : [];
  if (linkedNow === releaseId) return [];
  if (!(await releaseLists(tx, reaction.keeper, changeRequestId))) {
    await tx.query(
      `UPDATE change_request_states
         SET relink_release_ids = array_append(array_remove(relink_release_ids, $2), $2)
       WHERE change_request_id = $1`,
      [changeRequestId, releaseId],
    );
    return [];
  }
  return unlinkFor(
    reaction.keeper
      ? `change request ${changeRequestId} is linked to release ${reaction.keeper}: a change implements one release`
      : `change request ${changeRequestId} is linked to no release now`,
  );
}

/** The releases noted to say their link again (see reactToChangeLink), in the order noted; cleared. */
async function takeRelinks(tx: pg.PoolClient, changeRequestId: string): Promise<string[]> {
  const { rows } = await tx.query<{ relink_release_ids: string[] }>(
    `UPDATE change_request_states c SET relink_release_ids = '{}'
       FROM (SELECT relink_release_ids FROM change_request_states WHERE change_request_id = $1 FOR UPDATE) noted
     WHERE c.change_request_id = $1 AND cardinality(noted.relink_release_ids) > 0
     RETURNING noted.relink_release_ids`,
    [changeRequestId],
  );
  return rows[0]?.relink_release_ids ?? [];
}

/**
 * A release in DEPLOYMENT whose linked changes' states moved: one whose package already succeeded
 * in production moves on if its gate now holds (a change IMPLEMENTED by that very deployment is
 * told after it, on another topic). `deploying`: the releases in DEPLOYMENT among the events'
 * (lockDeployingReleases, which took their turns); the others are passed by without a read.
 */
async function reactToChangeStates(
  events: CloudEvent[],
  deploying: string[],
  tx: pg.PoolClient,
  deps: ReleaseReactionDeps,
) {
  // Each release's last event in the chunk: the cause of its reaction.
  const causes = new Map<string, { event: CloudEvent; metadata: EventMetadata | undefined }>();
  for (const event of events) {
    const link = linkedReleaseOf(event);
    if (link) causes.set(link.releaseId, { event, metadata: link.metadata });
  }
  for (const releaseId of deploying) {
    const cause = causes.get(releaseId);
    if (!cause) continue;
    await reactOnRelease(
      deps,
      tx,
      cause,
      releaseCommand(releaseId, async (state) => ({
        kind: "moveOnAfterProduction",
        changes: await loadChangeStates(tx, state.release),
      })),
      { reaction: "release", about: { releaseId } },
    );
  }
}

/**
 * The releases in DEPLOYMENT the events may move on (one a change's answer unlinks a change from,
 * one whose linked change's state moved), their reaction turns taken (lockReleaseReactions) in
 * one order before any reaction, so two chunks naming the same releases wait for each other
 * rather than deadlock. Releases in other phases have nothing to move on; their turns are not taken.
 */
async function lockDeployingReleases(events: CloudEvent[], tx: pg.PoolClient): Promise<string[]> {
  const named = new Set<string>();
  for (const event of events) {
    const reaction = linkReactionOf(event);
    if (reaction?.command === "answer" || reaction?.command === "refused") named.add(reaction.releaseId);
    const linked = linkedReleaseOf(event);
    if (linked) named.add(linked.releaseId);
  }
  if (!named.size) return [];
  const { rows } = await tx.query<{ release_id: string }>(
    "SELECT release_id FROM release_index WHERE release_id = ANY($1::uuid[]) AND phase = $2 AND status = $3",
    [[...named].filter(isUuid), ReleasePhase.DEPLOYMENT, ReleaseStatus.ACTIVE],
  );
  const deploying = rows.map((row) => row.release_id).sort();
  for (const releaseId of deploying) await lockReleaseReactions(tx, releaseId);
  return deploying;
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
      const deploying = await lockDeployingReleases([event], tx);
      await reactToChangeLink(event, tx, deps);
      await reactToChangeStates([event], deploying, tx, deps);
    },
    handleChunk: async (chunk, tx) => {
      const events = chunk.map(({ event }) => event);
      await applyChangeEvents(chunk, tx);
      const deploying = await lockDeployingReleases(events, tx);
      for (const event of events) await reactToChangeLink(event, tx, deps);
      await reactToChangeStates(events, deploying, tx, deps);
    },
  };
}
