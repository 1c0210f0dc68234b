import { type Attributes, type Span, SpanStatusCode } from "@opentelemetry/api";
import { isDataException } from "@rdm/eventstore";
import { inSpan, type Logger, meter, SpanKind, withTraceparent } from "@rdm/observability";
import type { Consumer, EachBatchPayload, IHeaders, Kafka, KafkaMessage, Producer } from "kafkajs";
import type { Pool, PoolClient } from "pg";
import { type CloudEvent, fromKafkaMessage, MalformedCloudEvent } from "./cloudevents.js";
import { type DeadLetterReason, deadLetterMessage } from "./dead-letter.js";
import { ensureConsumerTables, markHandled, rollback } from "./handled-events.js";
import { createProducer } from "./kafka.js";

/** Thrown by a handler when no retry can help (e.g. an undecodable protobuf): dead-letter at once. */
export class PermanentError extends Error {
  override readonly name = "PermanentError";
}

export interface MessageInfo {
  topic: string;
  partition: number;
  offset: string;
}

/** Applies one event's effect using `tx`, the transaction that also records it as handled. */
export type EventHandler = (event: CloudEvent, tx: PoolClient, info: MessageInfo) => Promise<void>;

export interface ConsumerOptions {
  kafka: Kafka;
  /** Pool of the consuming service's own database: effects and handled-markers live there. */
  pool: Pool;
  groupId: string;
  topics: string[];
  handle: EventHandler;
  deadLetterTopic: string;
  /** Attempts before a transiently failing message is dead-lettered. Default 5. */
  maxAttempts?: number;
  /** First retry delay; doubles per attempt up to maxRetryBackoffMs. Default 200 ms. */
  retryBackoffMs?: number;
  /** Default 10 s. */
  maxRetryBackoffMs?: number;
  /** Where a group without committed offsets starts. Default false (latest). */
  fromBeginning?: boolean;
  /**
   * Longest a fetch waits for new records. stop() waits for the fetch in flight, so this
   * bounds shutdown time; default 1 s (kafkajs' own default is 5 s).
   */
  maxWaitTimeInMs?: number;
  /** Group session timeout; default 30 s. */
  sessionTimeoutMs?: number;
  logger: Logger;
}

export interface RunningConsumer {
  /** Resolves once the consumer has joined its group and received an assignment. */
  ready: Promise<void>;
  /** Finishes the message in flight, commits the offsets handled so far, leaves the group. */
  stop(): Promise<void>;
}

type Outcome = "handled" | "duplicate" | "dead_lettered" | "abandoned";

/** The database could not be reached: not the message's fault, so it does not use up attempts. */
class DatabaseUnavailable extends Error {
  override readonly name = "DatabaseUnavailable";
}

/**
 * Consumes `topics` as `groupId` and applies each CloudEvent exactly once to the service's
 * database: the handled-marker and the handler's effect commit in one transaction, and the
 * offset is committed only after that (or after the message was dead-lettered). Messages
 * of a partition are handled one at a time, in order. A bad message never stops the
 * consumer: it goes to `deadLetterTopic` with the reason, and the consumer goes on.
 */
export async function startConsumer(options: ConsumerOptions): Promise<RunningConsumer> {
  const { kafka, pool, groupId, topics, handle, deadLetterTopic } = options;
  const maxAttempts = options.maxAttempts ?? 5;
  const retryBackoffMs = options.retryBackoffMs ?? 200;
  const maxRetryBackoffMs = options.maxRetryBackoffMs ?? 10_000;
  const sessionTimeout = options.sessionTimeoutMs ?? 30_000;
  const logger = options.logger.child({ consumer_group: groupId });

  await ensureConsumerTables(pool);

  const instruments = consumerInstruments(groupId);
  const producer: Producer = createProducer(kafka);
  await producer.connect();

  let stopping = false;
  const stopSignal = new AbortController();
  let consumer: Consumer | undefined;
  let restartTimer: NodeJS.Timeout | undefined;

  let markReady!: () => void;
  let failReady!: (error: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  // A caller who never awaits `ready` must not get an unhandled rejection when stopping early.
  ready.catch(() => undefined);

  /** Waits, unless stopping; returns false if the wait was cut short by stop(). */
  const pause = (ms: number) =>
    new Promise<boolean>((resolve) => {
      if (stopSignal.signal.aborted) return resolve(false);
      const timer = setTimeout(() => {
        stopSignal.signal.removeEventListener("abort", onAbort);
        resolve(true);
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      stopSignal.signal.addEventListener("abort", onAbort, { once: true });
    });
  const backoff = (attempt: number) => Math.min(maxRetryBackoffMs, retryBackoffMs * 2 ** (attempt - 1));

  async function handleInTransaction(event: CloudEvent, info: MessageInfo): Promise<"handled" | "duplicate"> {
    let tx: PoolClient;
    try {
      tx = await pool.connect();
    } catch (error) {
      throw new DatabaseUnavailable((error as Error).message, { cause: error });
    }
    let broken: Error | undefined;
    try {
      await tx.query("BEGIN");
      const first = await markHandled(tx, { consumerGroup: groupId, eventId: event.id, ...info });
      if (!first) {
        await tx.query("ROLLBACK");
        return "duplicate";
      }
      await handle(event, tx, info);
      await tx.query("COMMIT");
      return "handled";
    } catch (error) {
      broken = await rollback(tx, error as Error);
      throw error;
    } finally {
      tx.release(broken);
    }
  }

  /** Publishes the dead-letter copy; keeps trying (the partition waits) until it is accepted or we stop. */
  async function deadLetter(
    message: KafkaMessage,
    info: MessageInfo,
    reason: DeadLetterReason,
    error: Error,
    attempts: number,
    log: Logger,
    span: Span,
    heartbeat: () => Promise<void>,
  ): Promise<Outcome> {
    const copy = deadLetterMessage(message, {
      reason,
      error,
      consumerGroup: groupId,
      topic: info.topic,
      partition: info.partition,
      attempts,
    });
    span.setAttribute("rdm.dead_letter.reason", reason);
    span.setStatus({ code: SpanStatusCode.ERROR, message: `dead-lettered (${reason}): ${error.message}` });
    for (let attempt = 1; ; attempt++) {
      try {
        await producer.send({ topic: deadLetterTopic, acks: -1, messages: [copy] });
        log.warn({ err: error, reason, attempts, dead_letter_topic: deadLetterTopic }, "message dead-lettered");
        instruments.deadLettered.add(1, { "messaging.destination.name": info.topic, reason });
        return "dead_lettered";
      } catch (publishError) {
        log.error(
          { err: publishError, dead_letter_topic: deadLetterTopic },
          "could not publish to the dead-letter topic; retrying",
        );
        if (!(await pause(backoff(attempt)))) return "abandoned";
        // As in the handler's retries: waiting must not cost the assignment silently.
        await heartbeat();
      }
    }
  }

  async function processMessage(
    message: KafkaMessage,
    info: MessageInfo,
    heartbeat: () => Promise<void>,
  ): Promise<Outcome> {
    const attributes: Attributes = {
      "messaging.system": "kafka",
      "messaging.operation.type": "process",
      "messaging.destination.name": info.topic,
      "messaging.destination.partition.id": String(info.partition),
      "messaging.kafka.offset": Number(info.offset),
      "messaging.consumer.group.name": groupId,
    };
    return withTraceparent(firstHeader(message.headers, "traceparent"), () =>
      inSpan(
        `process ${info.topic}`,
        { kind: SpanKind.CONSUMER, attributes: attributes as Record<string, string | number> },
        async (span) => {
          let log = logger.child({ topic: info.topic, partition: info.partition, offset: info.offset });
          let event: CloudEvent;
          try {
            event = fromKafkaMessage(message);
          } catch (error) {
            if (!(error instanceof MalformedCloudEvent)) throw error;
            return deadLetter(message, info, "malformed", error, 0, log, span, heartbeat);
          }
          span.setAttributes({
            "messaging.message.id": event.id,
            "cloudevents.event_type": event.type,
            "cloudevents.event_subject": event.subject,
          });
          log = log.child({ event_id: event.id, event_type: event.type, event_subject: event.subject });

          for (let attempt = 1; ; ) {
            try {
              const outcome = await handleInTransaction(event, info);
              if (outcome === "duplicate") log.info("event already handled by this group; skipped");
              else log.debug({ attempt }, "event handled");
              instruments.handled.add(1, { "messaging.destination.name": info.topic, outcome });
              return outcome;
            } catch (error) {
              const err = error as Error;
              const notTheMessage = err instanceof DatabaseUnavailable || isTransient(err);
              if (notTheMessage) {
                log.error({ err }, "database unavailable or busy; retrying without using up an attempt");
              } else if (isPermanent(err)) {
                return deadLetter(message, info, "permanent", err, attempt, log, span, heartbeat);
              } else if (attempt >= maxAttempts) {
                return deadLetter(message, info, "attempts_exhausted", err, attempt, log, span, heartbeat);
              } else {
                log.warn({ err, attempt, max_attempts: maxAttempts }, "handler failed; retrying");
                span.addEvent("retry", { attempt, "exception.message": err.message });
              }
              if (!(await pause(backoff(attempt)))) return "abandoned";
              // Long retries must not cost us the assignment; a rebalance error here abandons
              // the message (not resolved, so it is redelivered).
              await heartbeat();
              if (!notTheMessage) attempt++;
            }
          }
        },
      ),
    );
  }

  async function eachBatch({
    batch,
    resolveOffset,
    heartbeat,
    commitOffsetsIfNecessary,
    isRunning,
    isStale,
  }: EachBatchPayload) {
    for (const message of batch.messages) {
      if (stopping || !isRunning() || isStale()) break;
      const info = { topic: batch.topic, partition: batch.partition, offset: message.offset };
      const outcome = await processMessage(message, info, heartbeat);
      if (outcome === "abandoned") break;
      resolveOffset(message.offset);
      instruments.recordLag(batch.topic, batch.partition, batch.highWatermark, message.offset);
      await commitOffsetsIfNecessary();
      await heartbeat();
    }
  }

  /** Starts a new consumer after `delayMs`, and keeps trying (doubling, up to a minute) until one runs or we stop. */
  function relaunch(delayMs: number) {
    restartTimer = setTimeout(() => {
      if (stopping) return;
      launch().catch((error) => {
        logger.error(
          { err: error, retry_in_ms: Math.min(delayMs * 2, 60_000) },
          "could not restart the kafka consumer",
        );
        if (!stopping) relaunch(Math.min(delayMs * 2, 60_000));
      });
    }, delayMs);
  }

  async function launch(): Promise<void> {
    const current = kafka.consumer({
      groupId,
      allowAutoTopicCreation: true,
      maxWaitTimeInMs: options.maxWaitTimeInMs ?? 1_000,
      sessionTimeout,
      heartbeatInterval: Math.min(3_000, Math.floor(sessionTimeout / 3)),
      retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 10_000 },
    });
    consumer = current;
    current.on(current.events.GROUP_JOIN, ({ payload }) => {
      logger.info(
        { member_id: payload.memberId, assignment: payload.memberAssignment, leader: payload.isLeader },
        "joined consumer group",
      );
      markReady();
    });
    current.on(current.events.CRASH, ({ payload }) => {
      logger.error({ err: payload.error, restart: payload.restart }, "kafka consumer crashed");
      // kafkajs restarts by itself after retriable errors only; the process must keep consuming.
      if (!payload.restart && !stopping && consumer === current) relaunch(maxRetryBackoffMs);
    });
    try {
      await current.connect();
      await current.subscribe({ topics, fromBeginning: options.fromBeginning ?? false });
      await current.run({
        // Offsets are resolved here one message at a time, after its effect committed (or it
        // was dead-lettered); kafkajs commits what is resolved after each batch, on stop and
        // before a rebalance.
        autoCommit: true,
        autoCommitInterval: 1_000,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch,
      });
    } catch (error) {
      // A half-started consumer keeps its connections (and, once joined, a group membership).
      await current.disconnect().catch(() => undefined);
      throw error;
    }
  }

  try {
    await launch();
  } catch (error) {
    await producer.disconnect();
    instruments.close();
    throw error;
  }
  logger.info({ topics, dead_letter_topic: deadLetterTopic }, "consumer started");

  let stopped: Promise<void> | undefined;
  return {
    ready,
    stop() {
      stopped ??= (async () => {
        stopping = true;
        stopSignal.abort();
        clearTimeout(restartTimer);
        await consumer?.disconnect();
        await producer.disconnect();
        instruments.close();
        failReady(new Error(`consumer ${groupId} stopped before it joined its group`));
        logger.info("consumer stopped");
      })();
      return stopped;
    },
  };
}

/**
 * No retry can help: the handler said so, the message is not a CloudEvent, or PostgreSQL
 * refused the event's data itself (SQLSTATE class 22, e.g. an id that is not a uuid). By name
 * too, so a PermanentError from another copy of this package (dist vs src) still counts.
 */
function isPermanent(error: Error): boolean {
  return (
    error instanceof PermanentError ||
    error instanceof MalformedCloudEvent ||
    error.name === "PermanentError" ||
    error.name === "MalformedCloudEvent" ||
    isDataException(error)
  );
}

/** SQLSTATE classes that say the database, not the event, is the problem. */
const TRANSIENT_SQLSTATE = [
  /^08/, // connection exception
  /^40/, // serialization failure, deadlock: the transaction lost a race
  /^53/, // insufficient resources
  /^57P/, // shutting down, cannot connect now
  /^25006$/, // read-only transaction: a standby during a failover
];
const CONNECTION_ERRNO = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH"]);

/**
 * Not the event's fault, so retried without using up an attempt (dead-lettering would lose a
 * good event while the database fails over): PostgreSQL unreachable, shutting down, read-only,
 * out of resources, a lost serialization race, a connection dropped mid-transaction, or another
 * writer that appended to the same stream first (WrongExpectedVersion; the retry re-decides).
 */
function isTransient(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    if (error.name === "error" && TRANSIENT_SQLSTATE.some((pattern) => pattern.test(code))) return true;
    if (CONNECTION_ERRNO.has(code)) return true;
  }
  return error.name === "WrongExpectedVersion" || /^Connection terminated/.test(error.message);
}

function firstHeader(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined || first === null ? undefined : first.toString();
}

/** Handled and dead-lettered counters and a lag gauge (high watermark minus next offset to process). */
function consumerInstruments(groupId: string) {
  const m = meter("@rdm/messaging");
  const group = { "messaging.consumer.group.name": groupId };
  const handled = m.createCounter("rdm.messaging.consumer.handled", {
    description: "Messages handled, by outcome (handled, duplicate)",
  });
  const deadLettered = m.createCounter("rdm.messaging.consumer.dead_lettered", {
    description: "Messages sent to the dead-letter topic, by reason",
  });
  const lagGauge = m.createObservableGauge("rdm.messaging.consumer.lag", {
    description: "Messages behind the partition's high watermark",
    unit: "{message}",
  });
  const lags = new Map<string, { topic: string; partition: number; lag: number }>();
  const observe = (result: { observe(value: number, attributes: Attributes): void }) => {
    for (const { topic, partition, lag } of lags.values()) {
      result.observe(lag, {
        ...group,
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": String(partition),
      });
    }
  };
  lagGauge.addCallback(observe);
  return {
    handled: { add: (n: number, attributes: Attributes) => handled.add(n, { ...group, ...attributes }) },
    deadLettered: { add: (n: number, attributes: Attributes) => deadLettered.add(n, { ...group, ...attributes }) },
    recordLag(topic: string, partition: number, highWatermark: string, offset: string) {
      lags.set(`${topic}\u0000${partition}`, {
        topic,
        partition,
        lag: Math.max(0, Number(highWatermark) - (Number(offset) + 1)),
      });
    },
    close: () => lagGauge.removeCallback(observe),
  };
}
