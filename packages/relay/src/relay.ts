import { EventStore, eventStoreMigrations, runMigrations } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import type { Kafka } from "kafkajs";
import type { Pool } from "pg";
import { relayMigrations } from "./checkpoint.js";
import { runRelay } from "./election.js";
import { HELD_BACK_FIRST_WAIT_MS } from "./leader.js";
import { createWakeup, type RelayContext, relayMetrics } from "./relay-context.js";

export { takeBatch, toCloudEvent } from "./batch.js";

export interface RelayOptions {
  pool: Pool;
  kafka: Kafka;
  /** e.g. `rdm.release.events.v1`. */
  topic: string;
  /** CloudEvents source, e.g. `rdm/release`. */
  source: string;
  /** Checkpoint and leadership name; one active relay per name and database (default "default"). */
  name?: string;
  /** Most events per Kafka request (default 500). */
  batchSize?: number;
  /**
   * Most event bytes per Kafka request (default 512 KiB; at least one event goes each time). A
   * partition's share of a request is one record batch, which the broker refuses above the
   * topic's max.message.bytes (1 MiB by default) again on every retry: the relay would stall.
   */
  maxBatchBytes?: number;
  /** Poll when no NOTIFY arrives; also how often a standby replica tries to take over (default 1000). */
  pollIntervalMs?: number;
  /**
   * When commits arrived while a batch was being published, the least time from that cycle's
   * start to the next one's (default 0): under a steady stream of commits, fewer and larger
   * batches. A commit that finds the relay waiting is published at once.
   */
  lingerMs?: number;
  /** How often to re-check the Kafka cluster id while running (default 30000). */
  clusterCheckIntervalMs?: number;
  /** Cap of the retry backoff after Kafka or database errors (default 10000). */
  maxBackoffMs?: number;
  /** How long stop() lets a batch in flight finish before it disconnects Kafka under it (default 10000). */
  stopTimeoutMs?: number;
  logger: Logger;
}

export interface Relay {
  /** Finishes the batch in flight (publish and checkpoint), releases leadership, disconnects. */
  stop(): Promise<void>;
  /** Whether this instance holds the relay lock right now (a second replica stands by). */
  readonly isLeader: boolean;
  /** Completed read cycles (observable progress for tests and health checks). */
  readonly cycles: number;
  /** Batches published, each one produce request (cycles that found nothing to publish are not). */
  readonly batches: number;
  /** The error of the last failed cycle; cleared by the next successful one. */
  readonly lastError: Error | undefined;
}

/** Default settings, then the tables the relay reads and writes, and its checkpoint row. */
async function prepareRelay(options: RelayOptions): Promise<RelayContext> {
  const { pool, kafka, topic, source } = options;
  const name = options.name ?? "default";
  await runMigrations(pool, eventStoreMigrations);
  await runMigrations(pool, relayMigrations);
  await pool.query("INSERT INTO relay_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [name]);
  const status = {
    stopping: false,
    leader: false,
    cycles: 0,
    batches: 0,
    lastError: undefined,
    abortKafka: undefined,
    heldBackWaitMs: HELD_BACK_FIRST_WAIT_MS / 2,
  };
  return {
    pool,
    kafka,
    topic,
    source,
    name,
    batchSize: options.batchSize ?? 500,
    maxBatchBytes: options.maxBatchBytes ?? 512 * 1024,
    pollIntervalMs: options.pollIntervalMs ?? 1000,
    lingerMs: options.lingerMs ?? 0,
    clusterCheckIntervalMs: options.clusterCheckIntervalMs ?? 30_000,
    maxBackoffMs: options.maxBackoffMs ?? 10_000,
    store: new EventStore(pool),
    log: options.logger.child({ relay: name, topic }),
    wakeup: createWakeup(() => status.stopping),
    metrics: relayMetrics(name, topic),
    status,
  };
}

/** Resolves true once `running` ends, false after `timeoutMs`. */
async function endsWithin(running: Promise<void>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  const done = await Promise.race([running.then(() => true), timedOut]);
  clearTimeout(timer);
  return done;
}

/**
 * Starts the outbox relay: publishes the service's events to Kafka in commit order and
 * advances a checkpoint after each acknowledged batch (at-least-once; see README for the
 * ordering argument). Never throws after start: errors are logged and retried with backoff.
 */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const ctx = await prepareRelay(options);
  const { status, log } = ctx;
  const running = runRelay(ctx);
  return {
    async stop() {
      status.stopping = true;
      ctx.wakeup.interrupt();
      if (!(await endsWithin(running, stopTimeoutMs))) {
        log.warn({ stopTimeoutMs }, "batch in flight did not finish in time; disconnecting Kafka under it");
        await status.abortKafka?.();
        // A database call hanging (pg has no timeout of its own) must not hang the shutdown too.
        if (!(await endsWithin(running, stopTimeoutMs)))
          log.error({ stopTimeoutMs }, "relay did not stop; shutting down without it");
      }
      ctx.metrics.close();
      log.info("relay stopped");
    },
    get isLeader() {
      return status.leader;
    },
    get cycles() {
      return status.cycles;
    },
    get batches() {
      return status.batches;
    },
    get lastError() {
      return status.lastError;
    },
  };
}
