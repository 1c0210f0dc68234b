import type { Aggregate, Command, DecisionContext } from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import type pg from "pg";
import { notificationsFor } from "../domain/notifications.js";
import {
  decide,
  evolve,
  fold,
  initialState,
  type ReleaseCommand,
  type ReleaseEvent,
  type ReleaseState,
} from "../domain/release.js";
import { decodeReleaseEvent } from "./event-codec.js";
import { releaseProjection } from "./release-projection.js";

/**
 * Release streams: named by the release's UUID, of type "release" (the store's default type, the
 * id up to its first "-", would be the UUID's first segment, in stream_type and in ce_streamtype).
 */
export const releases: Aggregate<ReleaseState, ReleaseEvent> = { streamType: "release", initialState, evolve };

/**
 * A release command as the command handler runs it: the notifications the policy asks for are
 * appended with the decided events, and the derived tables (index, deadlines, deliveries) are
 * written in the append's transaction. `toCommand` may read (e.g. linked change states) with `tx`.
 */
export function releaseCommand(
  releaseId: string,
  toCommand: (state: ReleaseState, tx: pg.PoolClient) => ReleaseCommand | Promise<ReleaseCommand>,
): Command<ReleaseState, ReleaseEvent> {
  return {
    aggregate: releases,
    streamId: releaseId,
    decide: async (state, ctx, tx) => decide(await toCommand(state, tx), state, ctx),
    policy: (decided, before, ctx: DecisionContext) => notificationsFor(decided, (prefix) => fold(prefix, before), ctx),
    projection: releaseProjection,
  };
}

/** The release's current state, for queries. */
export async function readRelease(store: EventStore, releaseId: string): Promise<ReleaseState> {
  return fold((await store.readStream(releaseId)).map(decodeReleaseEvent));
}
