import type { RecordedEvent } from "@rdm/eventstore";
import { createProducer, publishEvents } from "@rdm/messaging";
import { inSpan, SpanKind } from "@rdm/observability";
import type { Admin, Producer } from "kafkajs";
import type { PoolClient } from "pg";
import { takeBatch, toCloudEvent } from "./batch.js";
import { type RelayCheckpoint, readRelayCheckpoint } from "./checkpoint.js";
import type { RelayContext } from "./relay-context.js";

// The active relay's loop: read committed events after the checkpoint, publish them, advance
// the checkpoint. It runs on the session that holds the relay lock (see election.ts) and does
// the checkpoint writes on it, so a relay that lost its lock cannot write one.

/** First re-read delay when committed events wait behind an open transaction (doubles while they do). */
export const HELD_BACK_FIRST_WAIT_MS = 10;

/** Kafka clients and bookkeeping of one leadership term. */
interface LeaderSession {
  producer?: Producer;
  admin?: Admin;
  clusterId?: string;
  clusterCheckedAt: number;
  lagMeasuredAt: number;
  /**
   * The checkpoint as this leader's last advance left it, for a cycle that follows at once (more
   * commits were waiting): no read needed. Dropped before every wait, so a resetRelay or a manual
   * edit is read after it; while the relay cycles without a wait, an advance that finds the row
   * changed (rowCount 0) drops it too, and the next cycle reads the row again.
   */
  checkpoint?: RelayCheckpoint;
}

async function disconnectKafka(session: LeaderSession): Promise<void> {
  await Promise.allSettled([session.producer?.disconnect(), session.admin?.disconnect()]);
  session.producer = undefined;
  session.admin = undefined;
  session.clusterId = undefined;
}

/** Connects to Kafka if needed and, now and then, checks it is still the checkpoint's cluster. */
async function connectKafka(ctx: RelayContext, session: LeaderSession, client: PoolClient): Promise<Producer> {
  if (!session.producer || !session.admin) {
    session.producer = createProducer(ctx.kafka);
    session.admin = ctx.kafka.admin();
    await session.producer.connect();
    await session.admin.connect();
  }
  if (!session.clusterId || Date.now() - session.clusterCheckedAt > ctx.clusterCheckIntervalMs) {
    const current = (await session.admin.describeCluster()).clusterId;
    session.clusterCheckedAt = Date.now();
    if (current !== session.clusterId) {
      session.checkpoint = undefined;
      await adoptCluster(ctx, client, current);
    }
    session.clusterId = current;
  }
  return session.producer;
}

/** A checkpoint belongs to one Kafka cluster; on any other cluster everything is published again. */
async function adoptCluster(ctx: RelayContext, client: PoolClient, current: string): Promise<void> {
  const checkpoint = await readRelayCheckpoint(client, ctx.name);
  if (checkpoint?.kafkaClusterId === current) return;
  if (checkpoint?.kafkaClusterId) {
    ctx.log.warn(
      { previousClusterId: checkpoint.kafkaClusterId, clusterId: current },
      "Kafka cluster changed; re-publishing all events from the start",
    );
  } else {
    ctx.log.info({ clusterId: current }, "first run against this Kafka cluster; publishing from the start");
  }
  await client.query(
    `UPDATE relay_checkpoints SET transaction_id = '0', global_position = 0, kafka_cluster_id = $2, updated_at = now()
     WHERE name = $1`,
    [ctx.name, current],
  );
}

async function measureLag(ctx: RelayContext, client: PoolClient): Promise<void> {
  const { rows } = await client.query<{ n: string; oldest: Date | null }>({
    name: "rdm_relay_lag",
    text: `SELECT count(*) AS n, min(e.recorded_at) AS oldest
           FROM events e, relay_checkpoints c
           WHERE c.name = $1 AND (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)`,
    values: [ctx.name],
  });
  ctx.metrics.lag.events = Number(rows[0]?.n ?? 0);
  ctx.metrics.lag.oldest = rows[0]?.oldest ?? null;
}

/** Publishes `events` and moves the checkpoint past them: the new checkpoint, unless the row had changed. */
async function publishBatch(
  ctx: RelayContext,
  producer: Producer,
  client: PoolClient,
  checkpoint: RelayCheckpoint,
  events: RecordedEvent[],
): Promise<RelayCheckpoint | undefined> {
  await inSpan(
    "relay.publish",
    {
      kind: SpanKind.PRODUCER,
      attributes: { "messaging.destination.name": ctx.topic, "rdm.event_count": events.length },
    },
    () =>
      publishEvents(
        producer,
        ctx.topic,
        events.map((e) => toCloudEvent(e, ctx.source)),
      ),
  );
  const last = events[events.length - 1] as RecordedEvent;
  // Conditional on the checkpoint we read, so a concurrent resetRelay is not overwritten.
  const advanced = await client.query({
    name: "rdm_relay_advance",
    text: `UPDATE relay_checkpoints SET transaction_id = $2::xid8, global_position = $3, updated_at = now()
           WHERE name = $1 AND transaction_id = $4::xid8 AND global_position = $5`,
    values: [ctx.name, last.transactionId, last.globalPosition, checkpoint.transactionId, checkpoint.globalPosition],
  });
  ctx.metrics.published(events.length);
  if (advanced.rowCount !== 1) return undefined;
  return { ...checkpoint, transactionId: last.transactionId, globalPosition: last.globalPosition };
}

/**
 * One read-and-publish cycle. "cluster_changed" when the checkpoint names another cluster than
 * the one connected (another relay version, a manual edit): the caller adopts it again.
 */
async function relayCycle(
  ctx: RelayContext,
  session: LeaderSession,
  client: PoolClient,
): Promise<{ caughtUp: boolean; published: number } | "cluster_changed"> {
  const producer = await connectKafka(ctx, session, client);
  const checkpoint = session.checkpoint ?? (await readRelayCheckpoint(client, ctx.name));
  session.checkpoint = undefined;
  if (!checkpoint) throw new Error(`relay checkpoint ${ctx.name} disappeared`);
  if (checkpoint.kafkaClusterId !== session.clusterId) {
    session.clusterId = undefined;
    return "cluster_changed";
  }
  const read = await ctx.store.readAllCommitted({
    after: { transactionId: checkpoint.transactionId, globalPosition: checkpoint.globalPosition },
    limit: ctx.batchSize,
    client,
  });
  const events = takeBatch(read, ctx.maxBatchBytes);
  ctx.status.cycles++;
  if (events.length > 0) {
    session.checkpoint = await publishBatch(ctx, producer, client, checkpoint, events);
    ctx.status.batches++;
  }
  return { caughtUp: read.length < ctx.batchSize && events.length === read.length, published: events.length };
}

/**
 * Measures the lag now and then (before a wait, unless still held back) and, once caught up and
 * not about to linger (`busy`, see lead), waits for more.
 */
async function afterCycle(
  ctx: RelayContext,
  session: LeaderSession,
  client: PoolClient,
  cycle: { caughtUp: boolean; published: number },
  busy: boolean,
) {
  const waits = cycle.caughtUp && !busy;
  // Nothing published and events were waiting at the last count: they still are (only a publish
  // moves the checkpoint). Counting them again at every commit's NOTIFY would read every held-back
  // event per commit while an old transaction stays open.
  const stillHeldBack = cycle.published === 0 && ctx.metrics.lag.events > 0;
  if ((waits && !stillHeldBack) || Date.now() - session.lagMeasuredAt > 1000) {
    await measureLag(ctx, client);
    session.lagMeasuredAt = Date.now();
  }
  if (!waits) return;
  session.checkpoint = undefined;
  // Events beyond the checkpoint that could not be read yet are committed behind an older
  // transaction still open (it holds the snapshot's xmin). Its end sends no NOTIFY if it
  // appended nothing, so look again soon, backing off up to the poll interval.
  const heldBack = ctx.metrics.lag.events > 0;
  ctx.status.heldBackWaitMs = heldBack
    ? Math.min(ctx.status.heldBackWaitMs * 2, ctx.pollIntervalMs)
    : HELD_BACK_FIRST_WAIT_MS / 2;
  await ctx.wakeup.pause(heldBack ? ctx.status.heldBackWaitMs : ctx.pollIntervalMs, true);
}

/**
 * Publishes while this relay holds the lock, until stop() or until `lost()` reports the
 * session broken. A failed cycle is logged and retried with backoff on fresh Kafka clients
 * (the broker may be a new one, so its cluster id is checked again).
 */
export async function lead(ctx: RelayContext, client: PoolClient, lost: () => Error | undefined): Promise<void> {
  const session: LeaderSession = { clusterCheckedAt: 0, lagMeasuredAt: 0 };
  ctx.status.abortKafka = () => disconnectKafka(session);
  let backoff = 100;
  try {
    while (!ctx.status.stopping) {
      const broken = lost();
      if (broken) throw broken;
      ctx.wakeup.beginCycle();
      try {
        const startedAt = performance.now();
        const cycle = await relayCycle(ctx, session, client);
        if (cycle === "cluster_changed") continue;
        backoff = 100;
        ctx.status.lastError = undefined;
        // Commits that arrived while this batch was published wait a little for more (lingerMs):
        // each batch is one produce request and, per partition, one record batch, which is what a
        // consumer gets per fetch from some brokers (the mock cluster), so one transaction of theirs.
        // Only after a batch of several events: a lone commit's NOTIFY may arrive after the read
        // that already published it, and must not hold back the next one.
        const busy = cycle.caughtUp && cycle.published > 1 && ctx.wakeup.pending;
        await afterCycle(ctx, session, client, cycle, busy);
        const linger = busy ? startedAt + ctx.lingerMs - performance.now() : 0;
        if (linger > 0) await ctx.wakeup.pause(linger, false);
      } catch (error) {
        ctx.status.lastError = error as Error;
        session.checkpoint = undefined;
        if (lost()) throw error;
        ctx.log.error({ err: error, retryInMs: backoff }, "relay cycle failed; retrying");
        await disconnectKafka(session);
        await ctx.wakeup.pause(backoff, false);
        backoff = Math.min(backoff * 2, ctx.maxBackoffMs);
      }
    }
  } finally {
    ctx.status.abortKafka = undefined;
    await disconnectKafka(session);
  }
}
