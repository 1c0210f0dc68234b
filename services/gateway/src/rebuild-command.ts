import { setTimeout as delay } from "node:timers/promises";
import { loadConfig } from "@rdm/config";
import { createKafka, ensureConsumerTables } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { openDatabase } from "@rdm/runtime/process";
import type { Admin } from "kafkajs";
import { projections } from "./projections/index.js";
import { projectedTopics } from "./projections/projection.js";
import { holdProjectingLock, resetProjections } from "./rebuild.js";
import { gatewayRebuildEnv, migrateGateway, startProjectionConsumer } from "./service.js";

type Ends = Map<string, bigint>;
const key = (topic: string, partition: number) => `${topic}/${partition}`;

/** Where each partition of the topics ends now. */
async function highWatermarks(admin: Admin, topics: string[]): Promise<Ends> {
  const ends: Ends = new Map();
  for (const topic of topics)
    for (const p of await admin.fetchTopicOffsets(topic)) ends.set(key(topic, p.partition), BigInt(p.high));
  return ends;
}

/** Polls the group's committed offsets until every partition reached its end (bounded by `timeoutMs`). */
async function untilCaughtUp(admin: Admin, groupId: string, ends: Ends, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const topics = [...new Set([...ends.keys()].map((k) => k.slice(0, k.lastIndexOf("/"))))];
  for (;;) {
    const committed = new Map<string, bigint>();
    for (const t of await admin.fetchOffsets({ groupId, topics }))
      for (const p of t.partitions) committed.set(key(t.topic, p.partition), BigInt(p.offset));
    const behind = [...ends].filter(([k, end]) => end > 0n && (committed.get(k) ?? -1n) < end);
    if (behind.length === 0) return;
    if (Date.now() > deadline)
      throw new Error(`rebuild did not catch up within ${timeoutMs} ms: ${behind.map(([k]) => k).join(", ")} behind`);
    await delay(200);
  }
}

/**
 * Rebuilds every gateway view from the topics (see rebuild.ts): refused while a gateway projects
 * into the database; returns once everything that was on the topics when it began is projected.
 */
export async function rebuildGateway(
  env: NodeJS.ProcessEnv = process.env,
  { timeoutMs = 30 * 60_000 }: { timeoutMs?: number } = {},
): Promise<{ group: string }> {
  const config = loadConfig(gatewayRebuildEnv, env);
  const logger = createLogger("gateway-rebuild", config.LOG_LEVEL);
  const pool = await openDatabase(config.DATABASE_URL, { logger });
  try {
    await migrateGateway(pool, logger);
    const releaseLock = await holdProjectingLock(pool, "exclusive");
    const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: "rdm-gateway-rebuild", logger });
    const admin = kafka.admin();
    try {
      await ensureConsumerTables(pool);
      await admin.connect();
      const ends = await highWatermarks(admin, projectedTopics(projections, config.KAFKA_TOPIC_PREFIX));
      const { previousGroup, group } = await resetProjections(pool, projections, config.GATEWAY_CONSUMER_GROUP);
      logger.info({ previousGroup, group }, "views emptied; replaying the topics");
      const consumer = await startProjectionConsumer(config, kafka, pool, group, logger);
      try {
        await untilCaughtUp(admin, group, ends, timeoutMs);
      } finally {
        await consumer.stop();
      }
      logger.info({ group }, "gateway views rebuilt from the topics");
      return { group };
    } finally {
      await admin.disconnect();
      releaseLock();
    }
  } finally {
    await pool.end();
  }
}
