import { componentEnv, loadConfig, port, sharedEnv, z } from "@rdm/config";
import { runMigrations } from "@rdm/eventstore";
import { createKafka, type RunningConsumer, startConsumer } from "@rdm/messaging";
import { createLogger, type Logger } from "@rdm/observability";
import { observePoolUse, openDatabase, verifierFromConfig, watchDatabase } from "@rdm/runtime/process";
import type { Kafka } from "kafkajs";
import type pg from "pg";
import { buildGatewayApp } from "./app.js";
import { projections } from "./projections/index.js";
import {
  ensureRulesVersion,
  projectedTopics,
  projectionChunkHandler,
  projectionHandler,
  projectionRulesMigration,
} from "./projections/projection.js";
import { consumerGenerationMigration, currentConsumerGroup, holdProjectingLock } from "./rebuild.js";

const gatewayOwnEnv = {
  HTTP_HOST: z.string().default("127.0.0.1"),
  HTTP_PORT: port(8080),
  /** Consumer group of the projections; a new group (with a new database) rebuilds them from the topics. */
  GATEWAY_CONSUMER_GROUP: z.string().min(1).default("rdm-gateway"),
  GATEWAY_DLQ_TOPIC: z.string().min(1).default("rdm.gateway.dlq.v1"),
  /** How long the broker waits for a silent gateway before giving its partitions to another member. */
  GATEWAY_CONSUMER_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000),
  /**
   * How long the broker may hold a fetch that has nothing new. A real broker answers as soon as
   * data arrives, so there this only sets how often an idle gateway asks; librdkafka's mock
   * broker (`./rdm up`, the tests) answers only when the wait ends, so there it is a floor of
   * the projection's lag. 25 ms keeps that floor a quarter of the 100 ms visibility goal; each
   * halving costs more idle CPU (bench/dist/platform.js, 2026-12-02, load average 12–18:
   * 122, 92, 64, 51 ms of CPU per second idle at 10, 25, 50, 100 ms).
   */
  GATEWAY_FETCH_MAX_WAIT_MS: z.coerce.number().int().min(10).max(10_000).default(25),
};

export const gatewayEnv = componentEnv(gatewayOwnEnv);

/** What rebuild-views reads: the gateway's variables but for a token verifier (it serves no request). */
export const gatewayRebuildEnv = z.object({ ...sharedEnv, ...gatewayOwnEnv });

export type GatewayConfig = ReturnType<typeof loadConfig<typeof gatewayEnv>>;

/** The gateway's tables: the rules record, the consumer generation, every projection's views (refolded on a rules change). */
export async function migrateGateway(pool: pg.Pool, logger: Logger): Promise<void> {
  await runMigrations(pool, { component: "gateway.projections", migrations: [projectionRulesMigration] });
  await runMigrations(pool, { component: "gateway.rebuild", migrations: [consumerGenerationMigration] });
  for (const projection of projections) {
    await runMigrations(pool, { component: projection.name, migrations: projection.migrations });
    if (await ensureRulesVersion(pool, projection)) logger.info({ projection: projection.name }, "projection rebuilt");
  }
}

/** One group over every topic: one join, and each partition's events applied in order. */
export function startProjectionConsumer(
  config: GatewayConfig,
  kafka: Kafka,
  pool: pg.Pool,
  groupId: string,
  logger: Logger,
  fetchMaxWaitMs = config.GATEWAY_FETCH_MAX_WAIT_MS,
) {
  return startConsumer({
    kafka,
    pool,
    groupId,
    topics: projectedTopics(projections, config.KAFKA_TOPIC_PREFIX),
    handle: projectionHandler(projections, config.KAFKA_TOPIC_PREFIX),
    handleChunk: projectionChunkHandler(projections, config.KAFKA_TOPIC_PREFIX),
    deadLetterTopic: `${config.KAFKA_TOPIC_PREFIX}${config.GATEWAY_DLQ_TOPIC}`,
    fromBeginning: true,
    // On the mock broker every fetch is held this long, and that is visibility lag.
    maxWaitTimeInMs: fetchMaxWaitMs,
    sessionTimeoutMs: config.GATEWAY_CONSUMER_SESSION_TIMEOUT_MS,
    logger,
  });
}

export interface RunningGateway {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** Starts the gateway: its projection database, the HTTP server and the projection consumers. */
export async function startGateway(env: NodeJS.ProcessEnv = process.env): Promise<RunningGateway> {
  const config = loadConfig(gatewayEnv, env);
  const logger = createLogger("gateway", config.LOG_LEVEL);
  const pool = await openDatabase(config.DATABASE_URL, { logger });
  const stopObservingPool = observePoolUse(pool, "gateway");
  await migrateGateway(pool, logger);
  // Waits while a rebuild runs; then goes on with the consumer group the rebuild left.
  const releaseProjectingLock = await holdProjectingLock(pool, "shared");
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: "rdm-gateway", logger });
  let consumersReady = false;
  const databaseLost = new Set<() => void>();
  const database = watchDatabase(pool, {
    logger,
    onChange: (available) => {
      if (!available) for (const listener of databaseLost) listener();
    },
  });
  const app = await buildGatewayApp({
    pool,
    verifier: verifierFromConfig(config),
    logger,
    databaseAvailable: () => database.available,
    isReady: () => consumersReady,
    onDatabaseLost: (listener) => databaseLost.add(listener),
  });
  // Listening before the consumer group is joined (after a restart, up to a session timeout):
  // meanwhile the probes answer (/readyz 503) and the views serve what they hold.
  await app.listen({ host: config.HTTP_HOST, port: config.HTTP_PORT });
  const address = app.server.address();
  const boundPort = typeof address === "object" && address ? address.port : config.HTTP_PORT;
  logger.info({ port: boundPort }, "gateway listening");

  let consumer: RunningConsumer | undefined;
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      database.stop();
      await app.close();
      await consumer?.stop();
      releaseProjectingLock();
      stopObservingPool();
      await pool.end();
    })();
    return stopped;
  };
  try {
    const groupId = await currentConsumerGroup(pool, config.GATEWAY_CONSUMER_GROUP);
    consumer = await startProjectionConsumer(config, kafka, pool, groupId, logger);
  } catch (error) {
    await stop();
    throw error;
  }
  // stop() before the group join rejects `ready`: the gateway was never ready, and that is no crash.
  void consumer.ready.then(
    () => {
      consumersReady = true;
    },
    () => undefined,
  );
  return { port: boundPort, url: `http://${config.HTTP_HOST}:${boundPort}`, stop };
}
