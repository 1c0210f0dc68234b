import type { Logger } from "@rdm/observability";
import type { Consumer, EachBatchPayload, Kafka } from "kafkajs";
import type { Pool } from "pg";
import type { CloudEvent } from "./cloudevents.js";
import { consumerInstruments } from "./consumer-metrics.js";
import { untilDatabaseAnswers } from "./failures.js";
import { ensureConsumerTables } from "./handled-events.js";
import { createProducer } from "./kafka.js";
import {
  type ChunkHandler,
  decodableRun,
  type EventHandler,
  handleChunk,
  type Processing,
  processMessage,
} from "./message-processing.js";

export { PermanentError } from "./failures.js";
export type { ChunkHandler, EventHandler, MessageInfo } from "./message-processing.js";

export interface ConsumerOptions {
  kafka: Kafka;
  /** Pool of the consuming service's own database: effects and handled-markers live there. */
  pool: Pool;
  groupId: string;
  topics: string[];
  handle: EventHandler;
  /**
   * Applies the several events of one partition a fetch brought at once (one statement per
   * table instead of per event); `handle` still takes a lone message, and each message of a
   * chunk whose handler failed, to learn which one failed. Its effect must equal `handle`'s
   * applied to each event in order. Without it, a chunk calls `handle` per event.
   */
  handleChunk?: ChunkHandler;
  /**
   * The events the handlers have something to do for (e.g. two types of a topic): the others are
   * passed by without a transaction or a handled-marker. Default: every event.
   */
  accepts?: (event: CloudEvent) => boolean;
  /**
   * Whether accepted events may have an effect now (the notifier: whether any subscription
   * exists), asked once per chunk. When it answers false, the chunk's events are passed by as
   * unaccepted ones are, and a redelivery asks again; when it fails, they are handled as usual.
   * Answer false only when the handlers would do nothing more for them: `wanted` may do an
   * idempotent part of their effect itself (the notifier keeps changes' environments), since no
   * marker records it. A message that is no CloudEvent is still dead-lettered, but a handler's own
   * refusal of an event's data (PermanentError) is not asked for.
   */
  wanted?: (events: CloudEvent[]) => Promise<boolean>;
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

/** A promise the group join resolves, or stop() rejects if it comes first. */
function readinessSignal() {
  let markReady!: () => void;
  let failReady!: (error: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  // A caller who never awaits `ready` must not get an unhandled rejection when stopping early.
  ready.catch(() => undefined);
  return { ready, markReady, failReady };
}

/** Waits `ms`, unless `signal` aborts first; resolves false if the wait was cut short. */
const pauseUnless = (signal: AbortSignal) => (ms: number) =>
  new Promise<boolean>((resolve) => {
    if (signal.aborted) return resolve(false);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });

/** Most messages committed in one transaction (see handleChunk). */
const CHUNK_MAX = 200;

/**
 * A batch handled in order, in chunks of one transaction each, a message that failed in its
 * chunk then on its own with retries; each offset resolved only after its outcome is final.
 */
const batchHandler =
  (p: Processing, stopping: () => boolean) =>
  async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }: EachBatchPayload) => {
    const at = { topic: batch.topic, partition: batch.partition };
    const done = (offset: string) => {
      resolveOffset(offset);
      p.instruments.recordLag(batch.topic, batch.partition, batch.highWatermark, String(BigInt(offset) + 1n));
    };
    const { messages } = batch;
    if (messages[0]) p.instruments.recordLag(batch.topic, batch.partition, batch.highWatermark, messages[0].offset);
    // The message a chunk failed on: it goes alone, its failed attempt counted.
    let failure: { index: number; error?: Error } | undefined;
    for (let i = 0; i < messages.length; ) {
      if (stopping() || !isRunning() || isStale()) break;
      const room = failure ? failure.index - i : CHUNK_MAX;
      const chunk = decodableRun(messages.slice(i), at, room);
      if (chunk.length > 1 || (chunk.length === 1 && p.wanted)) {
        const result = await handleChunk(p, chunk, stopping);
        for (const { info } of chunk.slice(0, result.committed)) done(info.offset);
        i += result.committed;
        if ("failedAt" in result) failure = { index: i + result.failedAt, error: result.error };
      } else {
        const message = messages[i] as (typeof messages)[number];
        const failed = failure?.index === i ? failure.error : undefined;
        if (failure?.index === i) failure = undefined;
        const outcome = await processMessage(p, message, { ...at, offset: message.offset }, heartbeat, failed);
        if (outcome === "abandoned") break;
        done(message.offset);
        i += 1;
      }
      await commitOffsetsIfNecessary();
      await heartbeat();
    }
  };

function createGroupConsumer(options: ConsumerOptions): Consumer {
  const sessionTimeout = options.sessionTimeoutMs ?? 30_000;
  return options.kafka.consumer({
    groupId: options.groupId,
    allowAutoTopicCreation: true,
    maxWaitTimeInMs: options.maxWaitTimeInMs ?? 1_000,
    sessionTimeout,
    heartbeatInterval: Math.min(3_000, Math.floor(sessionTimeout / 3)),
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 10_000 },
  });
}

/** Connects, subscribes and runs `consumer`; a consumer that fails half-started is disconnected. */
async function runGroupConsumer(
  consumer: Consumer,
  options: ConsumerOptions,
  eachBatch: (payload: EachBatchPayload) => Promise<void>,
): Promise<void> {
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: options.topics, fromBeginning: options.fromBeginning ?? false });
    await consumer.run({
      // Offsets are resolved here message by message, after its effect committed (or it
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
    await consumer.disconnect().catch(() => undefined);
    throw error;
  }
}

/**
 * The group membership over the consumer's life: kafkajs restarts a consumer by itself after
 * retriable errors only, so after any other crash a new one is launched (the process must keep
 * consuming), and a failed relaunch is tried again, doubling the delay up to a minute.
 */
function groupMembership(
  options: ConsumerOptions,
  processing: Processing,
  onJoined: () => void,
  restartDelayMs: number,
) {
  const { logger } = processing;
  let stopping = false;
  let consumer: Consumer | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  const eachBatch = batchHandler(processing, () => stopping);

  function relaunch(delayMs: number) {
    restartTimer = setTimeout(() => {
      if (stopping) return;
      launch().catch((error) => {
        const next = Math.min(delayMs * 2, 60_000);
        logger.error({ err: error, retry_in_ms: next }, "could not restart the kafka consumer");
        if (!stopping) relaunch(next);
      });
    }, delayMs);
  }

  async function launch(): Promise<void> {
    const current = createGroupConsumer(options);
    consumer = current;
    current.on(current.events.GROUP_JOIN, ({ payload }) => {
      logger.info(
        { member_id: payload.memberId, assignment: payload.memberAssignment, leader: payload.isLeader },
        "joined consumer group",
      );
      onJoined();
    });
    current.on(current.events.CRASH, ({ payload }) => {
      logger.error({ err: payload.error, restart: payload.restart }, "kafka consumer crashed");
      if (!payload.restart && !stopping && consumer === current) relaunch(restartDelayMs);
    });
    await runGroupConsumer(current, options, eachBatch);
  }

  async function leave(): Promise<void> {
    stopping = true;
    clearTimeout(restartTimer);
    await consumer?.disconnect();
  }

  return { launch, leave };
}

/**
 * Consumes `topics` as `groupId` and applies each CloudEvent exactly once to the service's
 * database: the handled-marker and the handler's effect commit in one transaction, and the
 * offset is committed only after that (or after the message was dead-lettered). Messages
 * of a partition are handled in order, consecutive ones sharing a transaction. A bad message never stops the
 * consumer: it goes to `deadLetterTopic` with the reason, and the consumer goes on.
 */
export async function startConsumer(options: ConsumerOptions): Promise<RunningConsumer> {
  const { pool, groupId, topics, deadLetterTopic } = options;
  const retryBackoffMs = options.retryBackoffMs ?? 200;
  const maxRetryBackoffMs = options.maxRetryBackoffMs ?? 10_000;
  const logger = options.logger.child({ consumer_group: groupId });

  await untilDatabaseAnswers(() => ensureConsumerTables(pool), {
    logger,
    what: "starting the consumer",
    maxDelayMs: maxRetryBackoffMs,
  });
  const instruments = consumerInstruments(groupId);
  const producer = createProducer(options.kafka);
  await producer.connect();

  const stopSignal = new AbortController();
  const readiness = readinessSignal();
  const processing: Processing = {
    pool,
    groupId,
    handle: options.handle,
    handleChunk: options.handleChunk,
    accepts: options.accepts ?? (() => true),
    wanted: options.wanted,
    deadLetterTopic,
    maxAttempts: options.maxAttempts ?? 5,
    producer,
    instruments,
    logger,
    backoff: (attempt) => Math.min(maxRetryBackoffMs, retryBackoffMs * 2 ** (attempt - 1)),
    pause: pauseUnless(stopSignal.signal),
  };
  const membership = groupMembership(options, processing, readiness.markReady, maxRetryBackoffMs);

  try {
    await membership.launch();
  } catch (error) {
    await producer.disconnect();
    instruments.close();
    throw error;
  }
  logger.info({ topics, dead_letter_topic: deadLetterTopic }, "consumer started");

  let stopped: Promise<void> | undefined;
  return {
    ready: readiness.ready,
    stop() {
      stopped ??= (async () => {
        stopSignal.abort();
        await membership.leave();
        await producer.disconnect();
        instruments.close();
        readiness.failReady(new Error(`consumer ${groupId} stopped before it joined its group`));
        logger.info("consumer stopped");
      })();
      return stopped;
    },
  };
}
