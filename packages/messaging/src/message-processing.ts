import { type Attributes, type Span, SpanStatusCode } from "@opentelemetry/api";
import { inSpan, type Logger, SpanKind, withTraceparent } from "@rdm/observability";
import type { IHeaders, KafkaMessage, Producer } from "kafkajs";
import type { Pool, PoolClient } from "pg";
import { type CloudEvent, fromKafkaMessage, MalformedCloudEvent } from "./cloudevents.js";
import type { ConsumerInstruments } from "./consumer-metrics.js";
import { type DeadLetterReason, deadLetterMessage } from "./dead-letter.js";
import { DatabaseUnavailable, isPermanent, isTransient } from "./failures.js";
import { markHandled, rollback } from "./handled-events.js";

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

export type Outcome = "handled" | "duplicate" | "dead_lettered" | "abandoned";

/** What processing needs from the running consumer. */
export interface Processing {
  pool: Pool;
  groupId: string;
  handle: EventHandler;
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
    const first = await markHandled(tx, { consumerGroup: p.groupId, eventId: event.id, ...info });
    if (!first) {
      await tx.query("ROLLBACK");
      return "duplicate" as const;
    }
    await p.handle(event, tx, info);
    await tx.query("COMMIT");
    return "handled" as const;
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

/** Handles the event, retrying while a retry can help; dead-letters it when none can. */
async function handleWithRetries(p: Processing, d: Delivery, event: CloudEvent): Promise<Outcome> {
  for (let attempt = 1; ; ) {
    try {
      const outcome = await handleInTransaction(p, event, d.info);
      if (outcome === "duplicate") d.log.info("event already handled by this group; skipped");
      else d.log.debug({ attempt }, "event handled");
      p.instruments.handled.add(1, { "messaging.destination.name": d.info.topic, outcome });
      return outcome;
    } catch (error) {
      const err = error as Error;
      const notTheMessage = err instanceof DatabaseUnavailable || isTransient(err);
      if (notTheMessage) {
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

/** One message, in its own consumer span continuing the producer's trace. */
export function processMessage(
  p: Processing,
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
    "messaging.consumer.group.name": p.groupId,
  };
  return withTraceparent(firstHeader(message.headers, "traceparent"), () =>
    inSpan(
      `process ${info.topic}`,
      { kind: SpanKind.CONSUMER, attributes: attributes as Record<string, string | number> },
      async (span) => {
        const log = p.logger.child({ topic: info.topic, partition: info.partition, offset: info.offset });
        let event: CloudEvent;
        try {
          event = fromKafkaMessage(message);
        } catch (error) {
          if (!(error instanceof MalformedCloudEvent)) throw error;
          return deadLetter(p, { message, info, log, span, heartbeat }, "malformed", error, 0);
        }
        span.setAttributes({
          "messaging.message.id": event.id,
          "cloudevents.event_type": event.type,
          "cloudevents.event_subject": event.subject,
        });
        const eventLog = log.child({ event_id: event.id, event_type: event.type, event_subject: event.subject });
        return handleWithRetries(p, { message, info, log: eventLog, span, heartbeat }, event);
      },
    ),
  );
}

function firstHeader(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined || first === null ? undefined : first.toString();
}
