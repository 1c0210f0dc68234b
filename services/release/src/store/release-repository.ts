import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type EventStore, withTransaction } from "@rdm/eventstore";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";
import { decodeReleaseEvent, encodeReleaseEvent } from "../api/event-codec.js";
import { notificationsFor } from "../domain/notifications.js";
import {
  type DecisionContext,
  decide,
  evolve,
  fold,
  type ReleaseCommand,
  type ReleaseEvent,
  type ReleaseState,
} from "../domain/release.js";
import { recordDerived } from "./release-tables.js";

export interface Loaded {
  state: ReleaseState;
  version: number;
}

export interface CommandOrigin {
  actor: string;
  /** The groups claim of the caller's token; the service's own jobs have none. */
  groups?: readonly string[];
  now: Date;
  /** Client request id: idempotency key and correlation id. */
  requestId: string;
  correlationId?: string;
  causationId?: string;
  traceparent?: string | undefined;
}

export interface Idempotency {
  requestHash: string;
  response: (state: ReleaseState) => Uint8Array;
}

/** Loads, decides and appends release commands; derived tables are written in the append's transaction. */
export class ReleaseRepository {
  constructor(
    readonly store: EventStore,
    readonly pool: pg.Pool,
  ) {}

  async load(releaseId: string, client?: pg.PoolClient): Promise<Loaded> {
    const recorded = await this.store.readStream(releaseId, client ? { client } : {});
    return { state: fold(recorded.map(decodeReleaseEvent)), version: recorded.length };
  }

  /**
   * Decides `command` on the loaded state and appends its events plus the notifications the
   * policy asks for, all in one transaction (the caller's `client`, or a new one). Returns the
   * new state. Throws WrongExpectedVersion when the stream moved since it was loaded.
   */
  async decideAndAppend(
    releaseId: string,
    loaded: Loaded,
    command: ReleaseCommand,
    origin: CommandOrigin,
    options: { client?: pg.PoolClient; idempotency?: Idempotency } = {},
  ): Promise<{ state: ReleaseState; events: ReleaseEvent[] }> {
    const ctx: DecisionContext = {
      actor: origin.actor,
      groups: origin.groups ?? [],
      now: origin.now,
      newId: randomUUID,
    };
    const decided = decide(command, loaded.state, ctx);
    const all = [...decided, ...notificationsFor(decided, (prefix) => fold(prefix, loaded.state), ctx)];
    const stamped = all.map((event, index) => ({
      ...event,
      metadata: create(EventMetadataSchema, {
        eventId: randomUUID(),
        occurredAt: timestampFromDate(origin.now),
        actor: origin.actor,
        correlationId: origin.correlationId ?? origin.requestId,
        causationId: origin.causationId ?? origin.requestId,
        requestId: origin.requestId,
        streamId: releaseId,
        streamVersion: BigInt(loaded.version + index + 1),
      }),
    })) as ReleaseEvent[];
    const state = stamped.reduce(evolve, loaded.state);
    const run = async (client: pg.PoolClient) => {
      await this.store.appendToStream(
        releaseId,
        loaded.version === 0 ? "no_stream" : loaded.version,
        stamped.map((event) => encodeReleaseEvent(event, origin.traceparent)),
        {
          client,
          // The id is a bare UUID: the store's default type (the id up to its first "-") would be
          // its first segment, in stream_type and in the ce_streamtype header the relay publishes.
          streamType: "release",
          ...(options.idempotency
            ? {
                requestId: origin.requestId,
                requestHash: options.idempotency.requestHash,
                response: options.idempotency.response(state),
              }
            : {}),
        },
      );
      await recordDerived(client, state, stamped, origin.now);
    };
    if (options.client) await run(options.client);
    else await withTransaction(this.pool, run);
    return { state, events: stamped };
  }
}
