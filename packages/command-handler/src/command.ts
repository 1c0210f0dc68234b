import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { EventStore, Projection, RecordedEvent } from "@rdm/eventstore";
import type pg from "pg";
import type { DomainEvent, EventCodec } from "./event-codec.js";

/** A stream's state as of a version: what a snapshot holds. */
export interface Snapshot<S> {
  state: S;
  version: number;
}

/** A connection or a pool: what reads need. */
export type Queryable = Pick<pg.PoolClient, "query">;

/** Where an aggregate keeps snapshots; the handler reads one, then only the events after it. */
export interface SnapshotReader<S> {
  read(streamId: string, db: Queryable): Promise<Snapshot<S> | undefined>;
}

/** How to rebuild one kind of aggregate from its stream. */
export interface Aggregate<S, E extends DomainEvent> {
  /** Stream category recorded with the events; default: the stream id up to its first "-". */
  streamType?: string;
  /**
   * The id clients know a stream's aggregate by, for a NOT_FOUND naming it (default: the stream
   * id, as for releases and changes; `subscription-<id>` names subscription `<id>`).
   */
  idOf?(streamId: string): string;
  initialState(): S;
  evolve(state: S, event: E): S;
  /** evolve over many events at once, when the aggregate has a cheaper way than one by one. */
  fold?(events: E[], state: S): S;
  snapshots?: SnapshotReader<S>;
}

/** `state` after `events`: the aggregate's fold, or evolve one event after another. */
export const foldWith = <S, E extends DomainEvent>(aggregate: Aggregate<S, E>, events: E[], state: S): S =>
  aggregate.fold ? aggregate.fold(events, state) : events.reduce(aggregate.evolve, state);

/** `state` after stored events, decoded by `codec`. */
export const foldRecorded = <S, E extends DomainEvent>(
  aggregate: Aggregate<S, E>,
  codec: Pick<EventCodec<DomainEvent>, "decode">,
  records: Pick<RecordedEvent, "type" | "data">[],
  state: S,
): S =>
  foldWith(
    aggregate,
    records.map((r) => codec.decode(r) as E),
    state,
  );

/**
 * The state after an append as the next command would read it from the store: the decided one
 * when every event reads back from its encoding as decided (nearly always), else `before`
 * folded with the events as stored (e.g. text that UTF-8 cannot carry as it was). Saves
 * copying the whole state once more for every command.
 */
export function stateAsStored<S, E extends DomainEvent>(
  aggregate: Aggregate<S, E>,
  codec: Pick<EventCodec<DomainEvent>, "decode" | "same">,
  outcome: Outcome<S, E>,
  encoded: Pick<RecordedEvent, "type" | "data">[],
): S {
  const stored = encoded.map((r) => codec.decode(r) as E);
  const asDecided = stored.every((event, i) => {
    const decided = outcome.events[i];
    return decided !== undefined && codec.same(event, decided);
  });
  return asDecided ? outcome.after : foldWith(aggregate, stored, outcome.before);
}

/** What a decider may know besides the state: who asks, when, and a source of new ids. */
export interface DecisionContext {
  actor: string;
  /** The groups claim of the caller's token; a service's own jobs have none. */
  groups: readonly string[];
  now: Date;
  newId: () => string;
}

/** Who and why, stamped on every event of the command. */
export interface CommandOrigin {
  actor: string;
  groups?: readonly string[] | undefined;
  /** Client request id: idempotency key, and correlation and causation id unless given. Empty for reactions. */
  requestId: string;
  correlationId?: string | undefined;
  causationId?: string | undefined;
  traceparent?: string | undefined;
  /** When it happened, stamped as the events' occurred_at, when that is not now (e.g. an upstream event's time). */
  occurredAt?: Timestamp | undefined;
}

/**
 * The origin of a command a consumer issues in reaction to an upstream event: that event's actor
 * and correlation (else the event itself), caused by the event, in its trace; no request id.
 */
export function reactionOrigin(
  event: { id: string; source: string; traceparent?: string | undefined },
  metadata: { actor: string; correlationId: string } | undefined,
): CommandOrigin {
  return {
    actor: metadata?.actor || event.source,
    correlationId: metadata?.correlationId || event.id,
    causationId: event.id,
    requestId: "",
    traceparent: event.traceparent,
  };
}

/** A decided and appended command: the state before and after, the stamped events, the stream's new version. */
export interface Outcome<S, E> {
  streamId: string;
  before: S;
  after: S;
  events: E[];
  version: number;
}

/** One command on one stream. Every hook runs in the command's transaction (`tx`). */
export interface Command<S, E extends DomainEvent> {
  aggregate: Aggregate<S, E>;
  /**
   * The stream to decide on; a function is resolved again on each attempt (e.g. a look-up by
   * name). It runs in the command's transaction only when the command has `prepare`: a look-up
   * that locks rows (a queue's next item) needs one.
   */
  streamId: string | ((db: Queryable) => Promise<string>);
  /**
   * The stream id was made for this command (a new UUID): its first attempt is decided on the
   * initial state without reading the stream. Were it taken after all, the append is refused and
   * the command decided again on what the stream holds.
   */
  newStream?: boolean;
  /** Before deciding (after the request id check): locks and look-ups the decision depends on (e.g. an advisory lock). */
  prepare?: (tx: pg.PoolClient) => Promise<void>;
  /** The events the command produces; throws a RuleViolation to refuse. */
  decide: (state: S, ctx: DecisionContext, tx: pg.PoolClient) => E[] | Promise<E[]>;
  /**
   * Refuses (throws a RuleViolation) what the events would leave, e.g. a state too large to
   * answer with: it gets the state after them that the handler folds anyway.
   */
  check?: (after: S) => void;
  /** Events a policy adds to the decided ones in the same append (e.g. notifications). */
  policy?: (decided: E[], before: S, ctx: DecisionContext) => E[];
  /** Derived tables written in the append's transaction (called only when events were appended). */
  project?: (tx: pg.PoolClient, outcome: Outcome<S, E>, ctx: DecisionContext) => Promise<void>;
  /**
   * The same as a projection of many outcomes at once: a group-committed batch of commands
   * sharing it is projected in one call (e.g. one statement per table), not one per command.
   */
  projection?: Projection<Projected<S, E>>;
}

/** What a batched projection gets of each appended command. */
export interface Projected<S, E> {
  outcome: Outcome<S, E>;
  ctx: DecisionContext;
}

/** A command from a client: its answer is recorded under the request id, and a retry gets it back. */
export interface ClientCommand<S, E extends DomainEvent, R extends DescMessage> extends Command<S, E> {
  response: R;
  respond: (outcome: Outcome<S, E>) => MessageShape<R>;
  /** Hash of the request body (`requestFingerprint`): the same id with another body is refused. */
  requestHash: string;
  /**
   * `respond` reads only the state after the command (`after`, `streamId`, `version`), e.g. a
   * whole release: the answer is recorded as the stream's version and a retry gets it rebuilt
   * from the stream's events up to it. An answer that grows with its stream is then neither
   * encoded nor stored once more by every command.
   */
  answerIsState?: boolean;
}

/** What a recorded answer is checked and rebuilt with: a client command, or its response type and request hash. */
export type AnswerSource<S, E extends DomainEvent, R extends DescMessage> = Pick<
  ClientCommand<S, E, R>,
  "response" | "requestHash"
> &
  Partial<Pick<ClientCommand<S, E, R>, "aggregate" | "respond" | "answerIsState">>;

export interface RetryPolicy {
  /** Attempts in all, the first included (default 10). */
  maxAttempts?: number;
  /** The n-th re-decision waits a random time below n × this (default 5 ms). */
  jitterMs?: number;
  /** Errors to re-decide on besides WrongExpectedVersion and a deadlock (e.g. a unique read-model key taken meanwhile). */
  retryOn?: (error: unknown) => boolean;
}

export interface CommandHandlerOptions<E extends DomainEvent> {
  store: EventStore;
  codec: EventCodec<E>;
  clock?: () => Date;
  newId?: () => string;
  retry?: RetryPolicy;
  /** Streams whose state is kept between commands (most recently commanded first); default 1,000. */
  cachedStreams?: number;
  /**
   * The most bytes one event's payload may have (default 512 KiB): each event travels as one
   * Kafka record, which the broker refuses above the topic's max.message.bytes (1 MiB by
   * default), and the relay would retry it forever. A command that would record a larger event is
   * refused (INVALID_ARGUMENT, rule `event.too_large`) and nothing is appended.
   */
  maxEventBytes?: number;
}
