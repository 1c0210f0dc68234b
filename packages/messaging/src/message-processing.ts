import { type Attributes, context, propagation, type Span, SpanStatusCode } from "@opentelemetry/api";
import { commit } from "@rdm/eventstore";
import { inSpan, type Logger, SpanKind, tracer, withTraceparent } from "@rdm/observability";
import type { IHeaders, KafkaMessage, Producer } from "kafkajs";
import type { Pool, PoolClient } from "pg";
import { type CloudEvent, fromKafkaMessage, MalformedCloudEvent } from "./cloudevents.js";
import type { ConsumerInstruments } from "./consumer-metrics.js";
import { type DeadLetterReason, deadLetterMessage } from "./dead-letter.js";
import { DatabaseUnavailable, isLostRace, isPermanent, isTransient } from "./failures.js";
import { isHandled, markAllHandled, markHandled, rollback } from "./handled-events.js";

// One message from the partition to its outcome: decoded, handled exactly once in a
// transaction with its handled-marker, retried while a retry can help, else dead-lettered.
// Kept apart from the consumer's lifecycle (join, restart, stop) in consumer.ts.

export interface MessageInfo {
  topic: string;
  partition: number;
  offset: string;
}

/** Applies one event's effect using `tx`, the transaction that also records it as handled. */
export type EventHandler = (event: CloudEvent, tx: PoolClient, info: MessageInfo) => Promise<void>;

/**
 * Applies several events of one partition, in their order, using `tx`, the transaction that also
 * records them as handled: the events of a chunk not handled before (see handleChunk).
 */
export type ChunkHandler = (events: { event: CloudEvent; info: MessageInfo }[], tx: PoolClient) => Promise<void>;

/** skipped: an event the consumer does not accept, passed by without a transaction. */
export type Outcome = "handled" | "duplicate" | "skipped" | "dead_lettered" | "abandoned";

/** What processing needs from the running consumer. */
export interface Processing {
  pool: Pool;
  groupId: string;
  handle: EventHandler;
  handleChunk?: ChunkHandler | undefined;
  accepts: (event: CloudEvent) => boolean;
  wanted?: ((events: CloudEvent[]) => Promise<boolean>) | undefined;
  deadLetterTopic: string;
  maxAttempts: number;
  producer: Producer;
  instruments: ConsumerInstruments;
  logger: Logger;
  /** Delay before retry number `attempt`. */
  backoff(attempt: number): number;
  /** Waits, unless stopping; false if the wait was cut short by stop(). */
  pause(ms: number): Promise<boolean>;
}

/** The message in flight, with what its log lines, span and group membership need. */
interface Delivery {
  message: KafkaMessage;
  info: MessageInfo;
  log: Logger;
  span: Span;
  heartbeat: () => Promise<void>;
}

/** Marker and effect in one transaction: a second delivery of the event finds the marker. */
async function handleInTransaction(p: Processing, event: CloudEvent, info: MessageInfo) {
  let tx: PoolClient;
  try {
    tx = await p.pool.connect();
  } catch (error) {
    throw new DatabaseUnavailable((error as Error).message, { cause: error });
  }
  let broken: Error | undefined;
  try {
    await tx.query("BEGIN");
    // Read first, marked last (a twin's marker meanwhile undoes this effect): the transaction's id
    // comes from the handler's first write, so a command's stream lock is never stale (README).
    let first = !(await isHandled(tx, p.groupId, event.id));
    if (first) {
      await p.handle(event, tx, info);
      first = await markHandled(tx, { consumerGroup: p.groupId, eventId: event.id, ...info });
    }
    await tx.query(first ? "COMMIT" : "ROLLBACK");
    return first ? ("handled" as const) : ("duplicate" as const);
  } catch (error) {
    broken = await rollback(tx, error as Error);
    throw error;
  } finally {
    tx.release(broken);
  }
}

/** Publishes the dead-letter copy; keeps trying (the partition waits) until it is accepted or we stop. */
async function deadLetter(
  p: Processing,
  d: Delivery,
  reason: DeadLetterReason,
  error: Error,
  attempts: number,
): Promise<Outcome> {
  const copy = deadLetterMessage(d.message, {
    reason,
    error,
    consumerGroup: p.groupId,
    topic: d.info.topic,
    partition: d.info.partition,
    attempts,
  });
  d.span.setAttribute("rdm.dead_letter.reason", reason);
  d.span.setStatus({ code: SpanStatusCode.ERROR, message: `dead-lettered (${reason}): ${error.message}` });
  for (let attempt = 1; ; attempt++) {
    try {
      await p.producer.send({ topic: p.deadLetterTopic, acks: -1, messages: [copy] });
      d.log.warn({ err: error, reason, attempts, dead_letter_topic: p.deadLetterTopic }, "message dead-lettered");
      p.instruments.deadLettered.add(1, { "messaging.destination.name": d.info.topic, reason });
      return "dead_lettered";
    } catch (publishError) {
      d.log.error(
        { err: publishError, dead_letter_topic: p.deadLetterTopic },
        "could not publish to the dead-letter topic; retrying",
      );
      if (!(await p.pause(p.backoff(attempt)))) return "abandoned";
      // As in the handler's retries: waiting must not cost the assignment silently.
      await d.heartbeat();
    }
  }
}

/**
 * Handles the event, retrying while a retry can help; dead-letters it when none can.
 * `failed`: the first attempt was made already (in a chunk) and failed so.
 */
async function handleWithRetries(p: Processing, d: Delivery, event: CloudEvent, failed?: Error): Promise<Outcome> {
  let earlier = failed;
  for (let attempt = 1; ; ) {
    try {
      if (earlier) {
        const error = earlier;
        earlier = undefined;
        throw error;
      }
      const outcome = p.accepts(event) ? await handleInTransaction(p, event, d.info) : "skipped";
      if (outcome === "duplicate") d.log.info("event already handled by this group; skipped");
      else if (outcome === "skipped") d.span.setAttribute("rdm.messaging.outcome", "skipped");
      else d.log.debug({ attempt }, "event handled");
      countOutcomes(p, [d], [outcome]);
      return outcome;
    } catch (error) {
      const err = error as Error;
      const notTheMessage = err instanceof DatabaseUnavailable || isTransient(err);
      if (notTheMessage && isLostRace(err)) {
        d.log.info({ err }, "lost a race with another writer; retrying without using up an attempt");
      } else if (notTheMessage) {
        d.log.error({ err }, "database unavailable or busy; retrying without using up an attempt");
      } else if (isPermanent(err)) {
        return deadLetter(p, d, "permanent", err, attempt);
      } else if (attempt >= p.maxAttempts) {
        return deadLetter(p, d, "attempts_exhausted", err, attempt);
      } else {
        d.log.warn({ err, attempt, max_attempts: p.maxAttempts }, "handler failed; retrying");
        d.span.addEvent("retry", { attempt, "exception.message": err.message });
      }
      if (!(await p.pause(p.backoff(attempt)))) return "abandoned";
      // Long retries must not cost us the assignment; a rebalance error here abandons
      // the message (not resolved, so it is redelivered).
      await d.heartbeat();
      if (!notTheMessage) attempt++;
    }
  }
}

/**
 * The handled counter, by topic and outcome: each message's final outcome, the messages without
 * one left out. One addition per topic and outcome of a chunk, not per message.
 */
function countOutcomes(p: Processing, messages: readonly { info: MessageInfo }[], outcomes: readonly Outcome[]) {
  const counts = new Map<string, { topic: string; outcome: Outcome; n: number }>();
  messages.forEach(({ info }, i) => {
    const outcome = outcomes[i];
    if (!outcome) return;
    const key = `${info.topic}\u0000${outcome}`;
    const count = counts.get(key) ?? { topic: info.topic, outcome, n: 0 };
    count.n++;
    counts.set(key, count);
  });
  for (const { topic, outcome, n } of counts.values()) {
    p.instruments.handled.add(n, { "messaging.destination.name": topic, outcome });
  }
}

const spanAttributes = (p: Processing, info: MessageInfo): Attributes => ({
  "messaging.system": "kafka",
  "messaging.operation.type": "process",
  "messaging.destination.name": info.topic,
  "messaging.destination.partition.id": String(info.partition),
  "messaging.kafka.offset": Number(info.offset),
  "messaging.consumer.group.name": p.groupId,
});

/** Runs `work` in the message's own consumer span, continuing the producer's trace. */
function inMessageSpan<T>(p: Processing, message: KafkaMessage, info: MessageInfo, work: (span: Span) => Promise<T>) {
  const attributes = spanAttributes(p, info) as Record<string, string | number>;
  return withTraceparent(firstHeader(message.headers, "traceparent"), () =>
    inSpan(`process ${info.topic}`, { kind: SpanKind.CONSUMER, attributes }, work),
  );
}

/** The message's consumer span, continuing the producer's trace, started but not made active. */
function startMessageSpan(p: Processing, { message, info, event }: Decoded): Span {
  const traceparent = firstHeader(message.headers, "traceparent");
  const parent = traceparent ? propagation.extract(context.active(), { traceparent }) : context.active();
  const attributes = { ...spanAttributes(p, info), ...eventAttributes(event) };
  return tracer().startSpan(`process ${info.topic}`, { kind: SpanKind.CONSUMER, attributes }, parent);
}

/**
 * A message the consumer does not accept still gets its consumer span, ended at once: the trace
 * of a command reaches every consumer of its events, including those with nothing to do.
 */
function passBy(p: Processing, decoded: Decoded): void {
  const span = startMessageSpan(p, decoded);
  span.setAttribute("rdm.messaging.outcome", "skipped");
  span.end();
}

const eventAttributes = (event: CloudEvent) => ({
  "messaging.message.id": event.id,
  "cloudevents.event_type": event.type,
  "cloudevents.event_subject": event.subject,
});

/** One message, in its own consumer span: retried while a retry can help, else dead-lettered. */
export function processMessage(
  p: Processing,
  message: KafkaMessage,
  info: MessageInfo,
  heartbeat: () => Promise<void>,
  failed?: Error,
): Promise<Outcome> {
  return inMessageSpan(p, message, info, async (span) => {
    const log = p.logger.child({ topic: info.topic, partition: info.partition, offset: info.offset });
    let event: CloudEvent;
    try {
      event = fromKafkaMessage(message);
    } catch (error) {
      if (!(error instanceof MalformedCloudEvent)) throw error;
      return deadLetter(p, { message, info, log, span, heartbeat }, "malformed", error, 0);
    }
    span.setAttributes(eventAttributes(event));
    const eventLog = log.child({ event_id: event.id, event_type: event.type, event_subject: event.subject });
    return handleWithRetries(p, { message, info, log: eventLog, span, heartbeat }, event, failed);
  });
}

/** A message of a chunk, decoded. */
export interface Decoded {
  message: KafkaMessage;
  info: MessageInfo;
  event: CloudEvent;
}

/**
 * The messages from the start of `messages` that decode, up to `max`: a chunk stops before a
 * malformed one, which goes its own way (dead-lettered by processMessage).
 */
export function decodableRun(messages: KafkaMessage[], at: Omit<MessageInfo, "offset">, max: number): Decoded[] {
  const run: Decoded[] = [];
  for (const message of messages.slice(0, max)) {
    try {
      run.push({ message, info: { ...at, offset: message.offset }, event: fromKafkaMessage(message) });
    } catch {
      break;
    }
  }
  return run;
}

/** How a chunk went: how many committed, or the message it failed on (nothing committed). */
export type ChunkResult = { committed: number } | { committed: 0; failedAt: number; error?: Error };

/**
 * The chunk at once: its markers in one statement, then the chunk handler with the events not
 * handled before, each message in its own span for the duration. False (nothing committed) when
 * anything failed: the caller goes through the chunk message by message to learn which one.
 */
async function handleChunkAtOnce(p: Processing, handleAll: ChunkHandler, chunk: Decoded[]): Promise<boolean> {
  let tx: PoolClient;
  try {
    tx = await p.pool.connect();
  } catch {
    return false;
  }
  const spans = chunk.map((decoded) => startMessageSpan(p, decoded));
  let broken: Error | undefined;
  let outcomes: Outcome[];
  try {
    await tx.query("BEGIN");
    const accepted = chunk.filter(({ event }) => p.accepts(event));
    const first = await markAllHandled(
      tx,
      p.groupId,
      accepted.map(({ info, event }) => ({ eventId: event.id, ...info })),
    );
    await handleAll(
      accepted.filter((_, i) => first[i]),
      tx,
    );
    await commit(tx);
    const isFirst = new Map(accepted.map((decoded, i) => [decoded, first[i]]));
    outcomes = chunk.map((decoded) => {
      const marked = isFirst.get(decoded);
      return marked === undefined ? "skipped" : marked ? "handled" : "duplicate";
    });
  } catch (error) {
    broken = await rollback(tx, error as Error);
    p.logger.warn({ err: error, messages: chunk.length }, "chunk failed; handling its messages one by one");
    for (const span of spans) span.end();
    return false;
  } finally {
    tx.release(broken);
  }
  for (const span of spans) span.end();
  countOutcomes(p, chunk, outcomes);
  return true;
}

/** Whether the handlers may do something for a chunk's accepted events now (see ConsumerOptions.wanted). */
async function wanted(p: Processing, chunk: Decoded[]): Promise<boolean> {
  if (!p.wanted) return true;
  return p.wanted(chunk.filter(({ event }) => p.accepts(event)).map(({ event }) => event)).catch((error: Error) => {
    p.logger.warn({ err: error }, "could not tell whether a chunk's events are wanted now: handled as usual");
    return true;
  });
}

/**
 * Several messages of one partition in one transaction, one commit for all. With a chunk
 * handler, all at once (handleChunkAtOnce); else, or when that failed, each message's
 * marker and effect in order, each in its own span. Under a steady stream this spares a
 * connection, BEGIN and COMMIT per event, which left the gateway and the notifier behind their
 * topics. It ends early, committing what is done, once `stopping()`. A handler's failure rolls
 * the whole chunk back and says which message failed, with the error: that first attempt
 * counts (a PermanentError is not called again), and the messages before it are redone.
 */
export async function handleChunk(p: Processing, chunk: Decoded[], stopping: () => boolean): Promise<ChunkResult> {
  if (!chunk.some(({ event }) => p.accepts(event)) || !(await wanted(p, chunk))) {
    for (const decoded of chunk) passBy(p, decoded);
    countOutcomes(
      p,
      chunk,
      chunk.map((): Outcome => "skipped"),
    );
    return { committed: chunk.length };
  }
  if (p.handleChunk && (await handleChunkAtOnce(p, p.handleChunk, chunk))) return { committed: chunk.length };
  let tx: PoolClient;
  try {
    tx = await p.pool.connect();
  } catch (error) {
    return { committed: 0, failedAt: 0, error: new DatabaseUnavailable((error as Error).message, { cause: error }) };
  }
  let broken: Error | undefined;
  const outcomes: Outcome[] = [];
  try {
    await tx.query("BEGIN");
    for (const decoded of chunk) {
      const { message, info, event } = decoded;
      if (outcomes.length > 0 && stopping()) break;
      if (!p.accepts(event)) {
        passBy(p, decoded);
        outcomes.push("skipped");
        continue;
      }
      const outcome = await inMessageSpan(p, message, info, async (span) => {
        span.setAttributes(eventAttributes(event));
        const first = await markHandled(tx, { consumerGroup: p.groupId, eventId: event.id, ...info });
        if (first) await p.handle(event, tx, info);
        return first ? ("handled" as const) : ("duplicate" as const);
      }).catch(async (error: Error) => {
        broken = await rollback(tx, error);
        return error;
      });
      if (outcome instanceof Error) return { committed: 0, failedAt: outcomes.length, error: outcome };
      outcomes.push(outcome);
    }
    await commit(tx);
  } catch (error) {
    // BEGIN or COMMIT: not a message's fault; they go again, one at a time.
    broken = await rollback(tx, error as Error);
    return { committed: 0, failedAt: 0 };
  } finally {
    tx.release(broken);
  }
  countOutcomes(p, chunk, outcomes);
  return { committed: outcomes.length };
}

function firstHeader(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined || first === null ? undefined : first.toString();
}
