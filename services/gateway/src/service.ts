import { componentEnv, loadConfig, port, z } from "@rdm/config";
import { runMigrations } from "@rdm/eventstore";
import { createKafka, startConsumer } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { openDatabase, verifierFromConfig } from "@rdm/runtime";
import { buildGatewayApp } from "./app.js";
import { CHANGE_EVENTS_TOPIC, changeProjectionMigrations, projectChangeEvent } from "./projections/changes.js";
import {
  CONFIGURATION_EVENTS_TOPIC,
  configurationProjectionMigrations,
  projectConfigurationEvent,
} from "./projections/configuration.js";
import { projectReleaseEvent, RELEASE_EVENTS_TOPIC, releaseProjectionMigrations } from "./projections/releases.js";

export const gatewayEnv = componentEnv({
  HTTP_HOST: z.string().default("127.0.0.1"),
  HTTP_PORT: port(8080),
  /** Consumer group of the projections; a new group (with a new database) rebuilds them from the topics. */
  GATEWAY_CONSUMER_GROUP: z.string().min(1).default("rdm-gateway"),
  GATEWAY_DLQ_TOPIC: z.string().min(1).default("rdm.gateway.dlq.v1"),
});

export interface RunningGateway {
  port: number;
  url: string;
  stop(): Promise<void>;
}

/** Starts the gateway: its projection database, the projection consumers and the HTTP server. */
export async function startGateway(env: NodeJS.ProcessEnv = process.env): Promise<RunningGateway> {
  const config = loadConfig(gatewayEnv, env);
  const logger = createLogger("gateway", config.LOG_LEVEL);
  const pool = await openDatabase(config.DATABASE_URL, { logger });
  await runMigrations(pool, { component: "gateway.releases", migrations: releaseProjectionMigrations });
  await runMigrations(pool, { component: "gateway.configuration", migrations: configurationProjectionMigrations });
  await runMigrations(pool, { component: "gateway.changes", migrations: changeProjectionMigrations });

  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: "rdm-gateway", logger });
  // Started first and awaited after the others, so its group join overlaps theirs.
  const changesStarting = startConsumer({
    kafka,
    pool,
    groupId: `${config.GATEWAY_CONSUMER_GROUP}.changes`,
    topics: [CHANGE_EVENTS_TOPIC],
    handle: projectChangeEvent,
    deadLetterTopic: config.GATEWAY_DLQ_TOPIC,
    fromBeginning: true,
    logger,
  });
  const releases = await startConsumer({
    kafka,
    pool,
    groupId: `${config.GATEWAY_CONSUMER_GROUP}.releases`,
    topics: [RELEASE_EVENTS_TOPIC],
    handle: projectReleaseEvent,
    deadLetterTopic: config.GATEWAY_DLQ_TOPIC,
    fromBeginning: true,
    logger,
  });
  const configuration = await startConsumer({
    kafka,
    pool,
    groupId: `${config.GATEWAY_CONSUMER_GROUP}.configuration`,
    topics: [CONFIGURATION_EVENTS_TOPIC],
    handle: projectConfigurationEvent,
    deadLetterTopic: config.GATEWAY_DLQ_TOPIC,
    fromBeginning: true,
    logger,
  });
  const changes = await changesStarting;
  let changesReady = false;
  void changes.ready.then(() => {
    changesReady = true;
  });
  let consumersReady = false;
  void Promise.all([releases.ready, configuration.ready]).then(() => {
    consumersReady = true;
  });

  const app = await buildGatewayApp({
    pool,
    verifier: verifierFromConfig(config),
    logger,
    isReady: () => consumersReady && changesReady,
  });
  await app.listen({ host: config.HTTP_HOST, port: config.HTTP_PORT });
  const address = app.server.address();
  const boundPort = typeof address === "object" && address ? address.port : config.HTTP_PORT;
  logger.info({ port: boundPort }, "gateway listening");

  let stopped: Promise<void> | undefined;
  return {
    port: boundPort,
    url: `http://${config.HTTP_HOST}:${boundPort}`,
    stop() {
      stopped ??= (async () => {
        await app.close();
        await releases.stop();
        await configuration.stop();
        await changes.stop();
        await pool.end();
      })();
      return stopped;
    },
  };
}
