import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { EventStore } from "@rdm/eventstore";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";
import { decodeEvent, encodeEvent, type ServiceEvent } from "./event-codec.js";

/** How to rebuild one kind of aggregate from its stream. */
export interface Aggregate<S, E extends ServiceEvent> {
  /** Stream category recorded with the events (change, freeze, template). */
  streamType: string;
  initialState(): S;
  evolve(state: S, event: E): S;
}

/** Who and why, stamped on every event a command appends. */
export interface Cause {
  actor: string;
  correlationId: string;
  causationId: string;
  requestId: string;
  traceparent?: string | undefined;
  now: Date;
}

export interface Applied<S, E> {
  before: S;
  after: S;
  events: E[];
}

export async function loadAggregate<S, E extends ServiceEvent>(
  store: EventStore,
  aggregate: Aggregate<S, E>,
  streamId: string,
  client?: pg.PoolClient,
): Promise<{ state: S; version: number }> {
  const recorded = await store.readStream(streamId, client ? { client } : {});
  const state = recorded.map((event) => decodeEvent<E>(event)).reduce(aggregate.evolve, aggregate.initialState());
  return { state, version: recorded.at(-1)?.version ?? 0 };
}

/**
 * Read-decide-append on one stream inside the caller's transaction: loads the stream, decides,
 * stamps the events' metadata and appends them with the loaded version as the expected one (a
 * racing writer makes this throw WrongExpectedVersion -> ABORTED). Deciding nothing appends nothing.
 * With a request id the response is recorded with the events, so a retry returns it.
 */
export async function applyCommand<S, E extends ServiceEvent>(
  client: pg.PoolClient,
  store: EventStore,
  aggregate: Aggregate<S, E>,
  streamId: string,
  cause: Cause,
  decide: (state: S) => E[],
  idempotency?: { requestId: string; requestHash: string; response: (applied: Applied<S, E>) => Uint8Array },
): Promise<Applied<S, E>> {
  const { state: before, version } = await loadAggregate(store, aggregate, streamId, client);
  const events = decide(before);
  if (events.length === 0) return { before, after: before, events };
  events.forEach((event, index) => {
    event.metadata = create(EventMetadataSchema, {
      eventId: crypto.randomUUID(),
      occurredAt: timestampFromDate(cause.now),
      actor: cause.actor,
      correlationId: cause.correlationId,
      causationId: cause.causationId,
      requestId: cause.requestId,
      streamId,
      streamVersion: BigInt(version + index + 1),
    });
  });
  const after = events.reduce(aggregate.evolve, before);
  const applied = { before, after, events };
  await store.appendToStream(
    streamId,
    version === 0 ? "no_stream" : version,
    events.map((event) => encodeEvent(event, cause.traceparent)),
    {
      client,
      streamType: aggregate.streamType,
      ...(idempotency
        ? {
            requestId: idempotency.requestId,
            requestHash: idempotency.requestHash,
            response: idempotency.response(applied),
          }
        : {}),
    },
  );
  return applied;
}
