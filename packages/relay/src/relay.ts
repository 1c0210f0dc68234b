import { EVENTS_CHANNEL, EventStore, eventStoreMigrations, type RecordedEvent, runMigrations } from "@rdm/eventstore";
import { type CloudEvent, createProducer, publishEvents } from "@rdm/messaging";
import { inSpan, type Logger, meter, SpanKind } from "@rdm/observability";
import type { Admin, Kafka, Producer } from "kafkajs";
import type { Pool, PoolClient } from "pg";
import { readRelayCheckpoint, relayMigrations } from "./checkpoint.js";

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
  /** The error of the last failed cycle; cleared by the next successful one. */
  readonly lastError: Error | undefined;
}

/** First key of the two-int advisory lock; the second is hashtext(relay name). */
const RELAY_LOCK_CLASS = 0x5244_4d02;

/** CloudEvents extension names allow only [a-z0-9]. */
const METADATA_EXTENSIONS: Record<string, string> = {
  actor: "actor",
  correlationId: "correlationid",
  causationId: "causationid",
  requestId: "requestid",
};

/** Headers and framing per record, on top of the event's data (CloudEvents headers, key, traceparent). */
const RECORD_OVERHEAD_BYTES = 1024;

/** The longest prefix of `events` within `maxBytes`, and never empty: the order is kept whatever the sizes. */
export function takeBatch(events: RecordedEvent[], maxBytes: number): RecordedEvent[] {
  let bytes = 0;
  let count = 0;
  for (const event of events) {
    bytes += event.data.byteLength + RECORD_OVERHEAD_BYTES;
    if (count > 0 && bytes > maxBytes) break;
    count++;
  }
  return events.slice(0, count);
}

export function toCloudEvent(event: RecordedEvent, source: string): CloudEvent {
  const extensions: Record<string, string> = {
    streamversion: String(event.version),
    streamtype: event.streamType,
    globalposition: String(event.globalPosition),
  };
  for (const [key, name] of Object.entries(METADATA_EXTENSIONS)) {
    const value = event.metadata[key];
    if (typeof value === "string" && value) extensions[name] = value;
  }
  return {
    id: event.eventId,
    type: event.type,
    source,
    subject: event.streamId,
    time: event.recordedAt,
    data: event.data,
    traceparent: typeof event.metadata.traceparent === "string" ? event.metadata.traceparent : undefined,
    extensions,
  };
}

/**
 * Starts the outbox relay: publishes the service's events to Kafka in commit order and
 * advances a checkpoint after each acknowledged batch (at-least-once; see README for the
 * ordering argument). Never throws after start: errors are logged and retried with backoff.
 */
/** First re-read delay when committed events wait behind an open transaction (doubles while they do). */
const HELD_BACK_FIRST_WAIT_MS = 10;

export async function startRelay(options: RelayOptions): Promise<Relay> {
  const { pool, kafka, topic, source, logger } = options;
  const name = options.name ?? "default";
  const batchSize = options.batchSize ?? 500;
  const maxBatchBytes = options.maxBatchBytes ?? 512 * 1024;
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  const clusterCheckIntervalMs = options.clusterCheckIntervalMs ?? 30_000;
  const maxBackoffMs = options.maxBackoffMs ?? 10_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const log = logger.child({ relay: name, topic });
  const store = new EventStore(pool);

  await runMigrations(pool, eventStoreMigrations);
  await runMigrations(pool, relayMigrations);
  await pool.query("INSERT INTO relay_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", [name]);

  const m = meter("rdm.relay");
  const attributes = { relay: name, topic };
  const published = m.createCounter("rdm.relay.published_events", { description: "Events published to Kafka" });
  const lagEvents = m.createObservableGauge("rdm.relay.lag_events", {
    description: "Events appended but not yet published",
  });
  const lagSeconds = m.createObservableGauge("rdm.relay.lag_seconds", {
    description: "Age of the oldest event not yet published",
    unit: "s",
  });
  const lag = { events: 0, oldest: null as Date | null };
  const observeEvents = (r: { observe(v: number, a: typeof attributes): void }) => r.observe(lag.events, attributes);
  const observeSeconds = (r: { observe(v: number, a: typeof attributes): void }) =>
    r.observe(lag.oldest ? (Date.now() - lag.oldest.getTime()) / 1000 : 0, attributes);
  lagEvents.addCallback(observeEvents);
  lagSeconds.addCallback(observeSeconds);

  let stopping = false;
  let leader = false;
  let cycles = 0;
  let lastError: Error | undefined;
  let abortKafka: (() => Promise<void>) | undefined;
  let woken = false;
  let heldBackWaitMs = HELD_BACK_FIRST_WAIT_MS / 2;
  let wakeUp: (() => void) | undefined;
  let interruptible = false;
  const wake = () => {
    woken = true;
    if (interruptible) wakeUp?.();
  };
  /**
   * Sleeps up to ms; stop() always ends it early. When `onNotify`, so does a NOTIFY, including
   * one that arrived since the current cycle began (so no wake-up is lost between read and pause).
   */
  const pause = (ms: number, onNotify: boolean) =>
    new Promise<void>((resolve) => {
      if (stopping || (onNotify && woken)) return resolve();
      const timer = setTimeout(done, ms);
      wakeUp = done;
      interruptible = onNotify;
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
    });

  /** Holds the lock, LISTENs, and does the checkpoint writes, so a relay that lost its lock cannot write one. */
  async function lead(client: PoolClient, lost: () => Error | undefined): Promise<void> {
    let producer: Producer | undefined;
    let admin: Admin | undefined;
    let clusterId: string | undefined;
    let clusterCheckedAt = 0;
    let backoff = 100;
    let lagMeasuredAt = 0;
    const disconnectKafka = async () => {
      await Promise.allSettled([producer?.disconnect(), admin?.disconnect()]);
      producer = undefined;
      admin = undefined;
      clusterId = undefined;
    };
    abortKafka = disconnectKafka;
    try {
      while (!stopping) {
        const broken = lost();
        if (broken) throw broken;
        woken = false;
        try {
          if (!producer || !admin) {
            producer = createProducer(kafka);
            admin = kafka.admin();
            await producer.connect();
            await admin.connect();
          }
          if (!clusterId || Date.now() - clusterCheckedAt > clusterCheckIntervalMs) {
            const current = (await admin.describeCluster()).clusterId;
            clusterCheckedAt = Date.now();
            if (current !== clusterId) await adoptCluster(client, current);
            clusterId = current;
          }
          const checkpoint = await readRelayCheckpoint(client, name);
          if (!checkpoint) throw new Error(`relay checkpoint ${name} disappeared`);
          if (checkpoint.kafkaClusterId !== clusterId) {
            clusterId = undefined; // changed underneath us (another relay version, manual edit): adopt again
            continue;
          }
          const read = await store.readAllCommitted({
            after: { transactionId: checkpoint.transactionId, globalPosition: checkpoint.globalPosition },
            limit: batchSize,
            client,
          });
          const events = takeBatch(read, maxBatchBytes);
          cycles++;
          if (events.length > 0) {
            await inSpan(
              "relay.publish",
              {
                kind: SpanKind.PRODUCER,
                attributes: { "messaging.destination.name": topic, "rdm.event_count": events.length },
              },
              () =>
                publishEvents(
                  producer as Producer,
                  topic,
                  events.map((e) => toCloudEvent(e, source)),
                ),
            );
            const last = events[events.length - 1] as RecordedEvent;
            // Conditional on the checkpoint we read, so a concurrent resetRelay is not overwritten.
            await client.query(
              `UPDATE relay_checkpoints SET transaction_id = $2::xid8, global_position = $3, updated_at = now()
               WHERE name = $1 AND transaction_id = $4::xid8 AND global_position = $5`,
              [name, last.transactionId, last.globalPosition, checkpoint.transactionId, checkpoint.globalPosition],
            );
            published.add(events.length, attributes);
          }
          backoff = 100;
          lastError = undefined;
          const caughtUp = read.length < batchSize && events.length === read.length;
          if (caughtUp || Date.now() - lagMeasuredAt > 1000) {
            await measureLag(client);
            lagMeasuredAt = Date.now();
          }
          if (caughtUp) {
            // Events beyond the checkpoint that could not be read yet are committed behind an
            // older transaction still open (it holds the snapshot's xmin). Its end sends no
            // NOTIFY if it appended nothing, so look again soon, backing off up to the poll interval.
            heldBackWaitMs =
              lag.events > 0 ? Math.min(heldBackWaitMs * 2, pollIntervalMs) : HELD_BACK_FIRST_WAIT_MS / 2;
            await pause(lag.events > 0 ? heldBackWaitMs : pollIntervalMs, true);
          }
        } catch (error) {
          lastError = error as Error;
          if (lost()) throw error;
          log.error({ err: error, retryInMs: backoff }, "relay cycle failed; retrying");
          await disconnectKafka(); // reconnect and re-check the cluster id: the broker may be a new one
          await pause(backoff, false);
          backoff = Math.min(backoff * 2, maxBackoffMs);
        }
      }
    } finally {
      abortKafka = undefined;
      await disconnectKafka();
    }
  }

  /** A checkpoint belongs to one Kafka cluster; on any other cluster everything is published again. */
  async function adoptCluster(client: PoolClient, current: string): Promise<void> {
    const checkpoint = await readRelayCheckpoint(client, name);
    if (checkpoint?.kafkaClusterId === current) return;
    if (checkpoint?.kafkaClusterId) {
      log.warn(
        { previousClusterId: checkpoint.kafkaClusterId, clusterId: current },
        "Kafka cluster changed; re-publishing all events from the start",
      );
    } else {
      log.info({ clusterId: current }, "first run against this Kafka cluster; publishing from the start");
    }
    await client.query(
      `UPDATE relay_checkpoints SET transaction_id = '0', global_position = 0, kafka_cluster_id = $2, updated_at = now()
       WHERE name = $1`,
      [name, current],
    );
  }

  async function measureLag(client: PoolClient): Promise<void> {
    const { rows } = await client.query<{ n: string; oldest: Date | null }>(
      `SELECT count(*) AS n, min(e.recorded_at) AS oldest
       FROM events e, relay_checkpoints c
       WHERE c.name = $1 AND (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)`,
      [name],
    );
    lag.events = Number(rows[0]?.n ?? 0);
    lag.oldest = rows[0]?.oldest ?? null;
  }

  async function run(): Promise<void> {
    let backoff = 100;
    let standingBy = false;
    while (!stopping) {
      let client: PoolClient | undefined;
      let broken: Error | undefined;
      try {
        client = await pool.connect();
        client.on("error", (error) => {
          broken = error;
          wake();
        });
        client.on("notification", wake);
        while (!stopping && !broken) {
          const { rows } = await client.query<{ locked: boolean }>(
            "SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked",
            [RELAY_LOCK_CLASS, name],
          );
          if (rows[0]?.locked) break;
          if (!standingBy) log.info("another relay is active; standing by");
          standingBy = true;
          await pause(pollIntervalMs, false);
        }
        if (stopping || broken) continue;
        await client.query(`LISTEN ${EVENTS_CHANNEL}`);
        leader = true;
        standingBy = false;
        log.info("relay is active");
        await lead(client, () => broken);
        backoff = 100;
      } catch (error) {
        lastError = error as Error;
        log.error({ err: error, retryInMs: backoff }, "relay lost its database connection; reconnecting");
        broken ??= error as Error;
        await pause(backoff, false);
        backoff = Math.min(backoff * 2, maxBackoffMs);
      } finally {
        leader = false;
        // Destroying the session releases the advisory lock and the LISTEN with it.
        client?.release(true);
      }
    }
  }

  const running = run();
  return {
    async stop() {
      stopping = true;
      wakeUp?.();
      const finished = async () => {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), stopTimeoutMs);
        });
        const done = await Promise.race([running.then(() => true), timedOut]);
        clearTimeout(timer);
        return done;
      };
      if (!(await finished())) {
        log.warn({ stopTimeoutMs }, "batch in flight did not finish in time; disconnecting Kafka under it");
        await abortKafka?.();
        // A database call hanging (pg has no timeout of its own) must not hang the shutdown too.
        if (!(await finished())) log.error({ stopTimeoutMs }, "relay did not stop; shutting down without it");
      }
      lagEvents.removeCallback(observeEvents);
      lagSeconds.removeCallback(observeSeconds);
      log.info("relay stopped");
    },
    get isLeader() {
      return leader;
    },
    get cycles() {
      return cycles;
    },
    get lastError() {
      return lastError;
    },
  };
}
