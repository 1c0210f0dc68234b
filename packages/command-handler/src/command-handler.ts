import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type CommandResult, type EventStore, isConflict, withTransaction } from "@rdm/eventstore";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";
import type {
  Aggregate,
  AnswerSource,
  ClientCommand,
  Command,
  CommandHandlerOptions,
  CommandOrigin,
  DecisionContext,
  Outcome,
  Queryable,
  Snapshot,
} from "./command.js";
import { foldRecorded, foldWith, stateAsStored } from "./command.js";
import { isBehindExpected, isDeadlock } from "./conflicts.js";
import type { DomainEvent, EventCodec } from "./event-codec.js";
import { DEFAULT_MAX_EVENT_BYTES, refuseOversizedEvents } from "./event-size.js";
import { answerFor, answerToRecord, recordedAnswer } from "./recorded-answer.js";
import { isRuleViolation, namingTheMissing } from "./rule-violation.js";
import { StateCache } from "./state-cache.js";

/** A decided command before its append: the outcome it will have, and the version it expects. */
interface Decision<S, E> {
  outcome: Outcome<S, E>;
  ctx: DecisionContext;
  expected: number;
}

/** One attempt at a client's command: the recorded answer of a retry, or the decided outcome. */
type Attempt<S, E, R extends DescMessage> =
  | { replayed: MessageShape<R>; outcome: undefined }
  | { replayed: undefined; outcome: Outcome<S, E> };

/**
 * Load → check the request id → decide → stamp → append with the expected version → record the
 * answer, for every command of a service. See the README for the conflict policy.
 */
export class CommandHandler<E extends DomainEvent> {
  private readonly store: EventStore;
  private readonly codec: EventCodec<E>;
  private readonly clock: () => Date;
  private readonly newId: () => string;
  private readonly maxAttempts: number;
  private readonly jitterMs: number;
  private readonly retryOn: (error: unknown) => boolean;
  /** Per stream, the end of the last command queued on it in this process (see inTurn). */
  private readonly turns = new Map<string, Promise<void>>();
  private readonly states: StateCache;
  /** The most bytes one event may have (see CommandHandlerOptions). */
  readonly maxEventBytes: number;

  constructor(options: CommandHandlerOptions<E>) {
    this.store = options.store;
    this.codec = options.codec;
    this.clock = options.clock ?? (() => new Date());
    this.newId = options.newId ?? randomUUID;
    this.maxAttempts = options.retry?.maxAttempts ?? 10;
    this.jitterMs = options.retry?.jitterMs ?? 5;
    this.retryOn = options.retry?.retryOn ?? (() => false);
    this.states = new StateCache(options.cachedStreams ?? 1000);
    this.maxEventBytes = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  }

  /**
   * Runs a client's command and answers it. A retried request id gets the first answer back; a
   * conflict re-decides on fresh state (see README), then throws WrongExpectedVersion (ABORTED).
   * A command without `prepare` is decided on one read and its append (with its answer and its
   * projection) is group-committed with concurrent ones; a command with `prepare` (locks) runs in
   * its own transaction.
   */
  handle<S, ES extends E, R extends DescMessage>(
    origin: CommandOrigin,
    command: ClientCommand<S, ES, R>,
  ): Promise<MessageShape<R>> {
    const run = () => this.attempts(origin, command);
    return typeof command.streamId === "string" ? this.inTurn(command.streamId, run) : run();
  }

  /**
   * Commands on one stream in this process run one after the other: run together, all but one
   * would lose the append and be decided again (and a burst could exhaust the attempts). Only
   * writers in other processes are left to conflict.
   */
  private inTurn<T>(streamId: string, run: () => Promise<T>): Promise<T> {
    const turn = (this.turns.get(streamId) ?? Promise.resolve()).then(run, run);
    const settled = Promise.allSettled([turn]).then(() => undefined);
    this.turns.set(streamId, settled);
    void settled.then(() => {
      if (this.turns.get(streamId) === settled) this.turns.delete(streamId);
    });
    return turn;
  }

  private async attempts<S, ES extends E, R extends DescMessage>(
    origin: CommandOrigin,
    command: ClientCommand<S, ES, R>,
  ): Promise<MessageShape<R>> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = command.prepare
          ? await this.attemptInTransaction(origin, command)
          : await this.attemptGrouped(origin, command, attempt === 1);
        if (result.replayed) return result.replayed;
        const { outcome } = result as { outcome: Outcome<S, ES> };
        const response = answerFor(command, outcome);
        if (outcome.events.length > 0) return response;
        return await this.recordNoOp(origin.requestId, command, outcome, response);
      } catch (error) {
        const winner = await this.replayAfter(error, origin.requestId, command);
        if (winner) return winner;
        const again = isConflict(error) || isDeadlock(error) || this.retryOn(error);
        if (!again || attempt >= this.maxAttempts) throw error;
        await new Promise((resolve) => setTimeout(resolve, Math.random() * this.jitterMs * attempt));
      }
    }
  }

  private attemptInTransaction<S, ES extends E, R extends DescMessage>(
    origin: CommandOrigin,
    command: ClientCommand<S, ES, R>,
  ): Promise<Attempt<S, ES, R>> {
    return withTransaction(this.store.pool, async (tx) => {
      const loaded = await this.load(tx, command);
      // State first, then the request id: a twin request (same id, in flight together) either
      // committed before the state was read, and its answer is found here, or its effect is not
      // in the state and its id makes this append fail with DuplicateRequest (replayed below).
      const replayed = await this.replay(origin.requestId, command, tx);
      if (replayed) return { replayed, outcome: undefined };
      const decision = await this.decide(tx, origin, command, loaded);
      return { replayed: undefined, outcome: await this.append(origin, command, decision, tx) };
    });
  }

  /**
   * Decided outside any transaction (the hooks only read), appended by the store's group commit
   * with the answer and the projection. A first attempt on a known state (cached, or a new
   * stream) reads nothing: the append refuses a stale state (WrongExpectedVersion) and an
   * answered request id (DuplicateRequest, answered from the record). Otherwise the stream and
   * the request id's answer are read in one statement (one snapshot: the twin argument holds).
   */
  private async attemptGrouped<S, ES extends E, R extends DescMessage>(
    origin: CommandOrigin,
    command: ClientCommand<S, ES, R>,
    first: boolean,
  ): Promise<Attempt<S, ES, R>> {
    const client = await this.store.pool.connect();
    let decision: Decision<S, ES>;
    try {
      const { aggregate } = command;
      const streamId = typeof command.streamId === "string" ? command.streamId : await command.streamId(client);
      const known = first ? this.knownState(command, streamId) : undefined;
      const unread = known && (await this.decideUnread(client, origin, command, { streamId, ...known }));
      if (unread) decision = unread;
      else {
        const start = await this.startOf(aggregate, streamId, client);
        const read = await this.store.readStreamWithCommandResult(streamId, origin.requestId, {
          client,
          fromVersion: start.version + 1,
        });
        const replayed = await this.recordedAnswer(read.commandResult, origin.requestId, command, client);
        if (replayed) return { replayed, outcome: undefined };
        const state = foldRecorded(aggregate, this.codec, read.events, start.state);
        const loaded = { streamId, state, version: read.events.at(-1)?.version ?? start.version };
        // Read outside a transaction: committed events only.
        if (read.events.length > 0) this.states.put(aggregate, streamId, loaded);
        decision = await this.decide(client, origin, command, loaded);
      }
    } finally {
      client.release();
    }
    return { replayed: undefined, outcome: await this.append(origin, command, decision, undefined) };
  }

  /**
   * Runs a command in the caller's transaction (a job, a consumer): no request id, no re-decision.
   * Its stream is locked first, so appends meanwhile wait and are decided again: a consumer would
   * lose to them again and again on a busy stream. A conflict left throws WrongExpectedVersion.
   */
  async handleIn<S, ES extends E>(tx: pg.PoolClient, origin: CommandOrigin, command: Command<S, ES>) {
    const decision = await this.decide(tx, origin, command, await this.load(tx, command, { lock: true }));
    return this.append(origin, command, decision, tx, false);
  }

  /**
   * The stream's current state and version (from a snapshot when the aggregate keeps them), on `db`:
   * the command's transaction (`lock`: its row locked first, as handleIn does), or the pool.
   */
  async load<S, ES extends E>(
    db: Queryable,
    command: { aggregate: Aggregate<S, ES>; streamId: string | ((db: Queryable) => Promise<string>) },
    options: { lock?: boolean } = {},
  ): Promise<Snapshot<S> & { streamId: string }> {
    const streamId = typeof command.streamId === "string" ? command.streamId : await command.streamId(db);
    if (options.lock) await this.store.lockStream(streamId, db);
    const { aggregate } = command;
    const start = await this.startOf(aggregate, streamId, db);
    const recorded = await this.store.readStream(streamId, { client: db, fromVersion: start.version + 1 });
    const state = foldRecorded(aggregate, this.codec, recorded, start.state);
    return { streamId, state, version: recorded.at(-1)?.version ?? start.version };
  }

  /**
   * The decision on a known state, if it appends events: a refusal or a no-op may come from a
   * state behind the stream, which the append's version check would not catch.
   */
  private async decideUnread<S, ES extends E>(
    client: pg.PoolClient,
    origin: CommandOrigin,
    command: Command<S, ES>,
    known: Snapshot<S> & { streamId: string },
  ): Promise<Decision<S, ES> | undefined> {
    try {
      const decision = await this.decide(client, origin, command, known);
      return decision.outcome.events.length > 0 ? decision : undefined;
    } catch (error) {
      if (isRuleViolation(error)) return undefined;
      throw error;
    }
  }

  /** A state to decide on without a read: a new stream's initial one, or the cached one. */
  private knownState<S, ES extends E>(command: Command<S, ES>, streamId: string): Snapshot<S> | undefined {
    const { aggregate } = command;
    return command.newStream ? { state: aggregate.initialState(), version: 0 } : this.states.get(aggregate, streamId);
  }

  /** Where a stream's fold starts: its cached state, its snapshot, or the aggregate's initial state. */
  private async startOf<S, ES extends E>(aggregate: Aggregate<S, ES>, streamId: string, db: Queryable) {
    return (
      this.states.get(aggregate, streamId) ??
      (await aggregate.snapshots?.read(streamId, db)) ?? { state: aggregate.initialState(), version: 0 }
    );
  }

  private async decide<S, ES extends E>(
    tx: pg.PoolClient,
    origin: CommandOrigin,
    command: Command<S, ES>,
    loaded: Snapshot<S> & { streamId: string },
  ): Promise<Decision<S, ES>> {
    await command.prepare?.(tx);
    const now = this.clock();
    const ctx: DecisionContext = { actor: origin.actor, groups: origin.groups ?? [], now, newId: this.newId };
    let decided: ES[];
    try {
      decided = await command.decide(loaded.state, ctx, tx);
    } catch (error) {
      throw namingTheMissing(error, command.aggregate, loaded.streamId);
    }
    const all =
      decided.length > 0 && command.policy ? [...decided, ...command.policy(decided, loaded.state, ctx)] : decided;
    const events = this.stamp(all, origin, loaded.streamId, loaded.version, now);
    const outcome: Outcome<S, ES> = {
      streamId: loaded.streamId,
      before: loaded.state,
      after: foldWith(command.aggregate, events, loaded.state),
      events,
      version: loaded.version + events.length,
    };
    if (events.length > 0) command.check?.(outcome.after);
    return { outcome, ctx, expected: loaded.version };
  }

  /**
   * Appends the decided events with the expected version, the answer of a client's command and
   * the projection: in `tx` when given, else group-committed by the store.
   */
  private async append<S, ES extends E>(
    origin: CommandOrigin,
    command: Command<S, ES>,
    { outcome, ctx, expected }: Decision<S, ES>,
    tx: pg.PoolClient | undefined,
    answered = true,
  ): Promise<Outcome<S, ES>> {
    if (outcome.events.length === 0) return outcome;
    const client = answered && origin.requestId ? (command as ClientCommand<S, ES, DescMessage>) : undefined;
    const { project, projection, aggregate } = command;
    const encoded = outcome.events.map((event) => this.codec.encode(event, origin.traceparent));
    refuseOversizedEvents(encoded, this.maxEventBytes);
    await this.store
      .appendToStream(outcome.streamId, expected === 0 ? "no_stream" : expected, encoded, {
        ...(tx ? { client: tx } : {}),
        ...(command.aggregate.streamType ? { streamType: command.aggregate.streamType } : {}),
        ...(client
          ? {
              requestId: origin.requestId,
              requestHash: client.requestHash,
              // A state answer is rebuilt from the stream (answerIsState): the append records its version.
              ...(client.answerIsState ? {} : { response: answerToRecord(client, outcome) }),
            }
          : {}),
        ...(projection
          ? { projection: { projection, item: { outcome, ctx } } }
          : project
            ? { projection: { projection: { apply: (db) => project(db, outcome, ctx) }, item: undefined } }
            : {}),
      })
      .catch((error: unknown) => {
        if (isBehindExpected(error)) this.states.forget(outcome.streamId);
        throw error;
      });
    // Group-committed: the events are committed now. The state kept is what the next command
    // would read from the store (stateAsStored).
    if (!tx) {
      const state = stateAsStored(aggregate, this.codec, outcome, encoded);
      this.states.put(aggregate, outcome.streamId, { state, version: outcome.version });
    }
    return outcome;
  }

  /**
   * The events with the metadata every command's events get (event id, occurred at, actor,
   * correlation, causation and request id, stream id and version from `from + 1`): for services
   * that decide many commands at once and append them with EventStore.appendMany.
   */
  stamp<ES extends E>(events: ES[], origin: CommandOrigin, streamId: string, from: number, now = this.clock()): ES[] {
    const occurredAt = origin.occurredAt ?? timestampFromDate(now);
    return events.map((event, index) => ({
      ...event,
      metadata: create(EventMetadataSchema, {
        eventId: this.newId(),
        occurredAt,
        actor: origin.actor,
        correlationId: origin.correlationId || origin.requestId,
        causationId: origin.causationId || origin.requestId,
        requestId: origin.requestId,
        streamId,
        streamVersion: BigInt(from + index + 1),
      }),
    }));
  }

  /**
   * A command that appended nothing still records its answer: otherwise a retry would be decided
   * again on whatever the state is by then. Taken meanwhile by a twin: the twin's answer is ours.
   */
  private async recordNoOp<S, ES extends E, R extends DescMessage>(
    requestId: string,
    command: ClientCommand<S, ES, R>,
    outcome: Outcome<S, ES>,
    response: MessageShape<R>,
  ): Promise<MessageShape<R>> {
    const recorded = await this.store.recordCommandResult(requestId, {
      requestHash: command.requestHash,
      response: command.answerIsState ? null : toBinary(command.response, response),
      streamId: outcome.streamId,
      streamVersion: outcome.version,
    });
    return recorded ? response : ((await this.replay(requestId, command)) ?? response);
  }

  /**
   * The recorded answer of this request id (read on `db`: the command's transaction, or the
   * pool); reusing the id for another request is refused.
   */
  async replay<S, ES extends E, R extends DescMessage>(
    requestId: string,
    command: AnswerSource<S, ES, R>,
    db: Queryable = this.store.pool,
  ): Promise<MessageShape<R> | undefined> {
    return this.recordedAnswer(await this.store.getCommandResult(requestId, { client: db }), requestId, command, db);
  }

  /**
   * The recorded answer of this request id, on `db`: its bytes, or the stream's state at the
   * recorded version (answerIsState) rebuilt from the stream's events.
   */
  private recordedAnswer<S, ES extends E, R extends DescMessage>(
    previous: CommandResult | null,
    requestId: string,
    command: AnswerSource<S, ES, R>,
    db: Queryable,
  ): Promise<MessageShape<R> | undefined> {
    return recordedAnswer(
      { store: this.store, codec: this.codec, states: this.states, db },
      previous,
      requestId,
      command,
    );
  }

  /**
   * After a failed attempt: a twin with the same request id committed first, while this one was
   * appending (DuplicateRequest) or deciding (a refusal of a state holding the twin's effect).
   */
  private async replayAfter<S, ES extends E, R extends DescMessage>(
    error: unknown,
    requestId: string,
    command: AnswerSource<S, ES, R>,
  ): Promise<MessageShape<R> | undefined> {
    const twinMayHaveWon = (error instanceof Error && error.name === "DuplicateRequest") || isRuleViolation(error);
    if (!twinMayHaveWon || isRuleViolation(error, "request.idempotency")) return undefined;
    return this.replay(requestId, command);
  }
}
