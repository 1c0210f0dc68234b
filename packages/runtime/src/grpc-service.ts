import type { DomainEvent, QueryTables } from "@rdm/command-handler";
import { grpcServiceEnv, loadConfig } from "@rdm/config";
import { EventStore, eventStoreMigrations, type Migration, runMigrations } from "@rdm/eventstore";
import { createGrpcServer, type ServiceRegistration } from "@rdm/grpc";
import { createKafka, type EventSource, eventsTopic } from "@rdm/messaging";
import { createLogger, type Logger } from "@rdm/observability";
import { descriptorImagePath } from "@rdm/proto";
import { startRelay } from "@rdm/relay";
import type { Kafka } from "kafkajs";
import type pg from "pg";
import { openDatabase } from "./database.js";
import { watchDatabase } from "./database-health.js";
import { observePoolUse } from "./pool-metrics.js";
import { verifierFromConfig } from "./verifier.js";

export interface ServiceContext {
  name: string;
  /** The topic name in this installation (KAFKA_TOPIC_PREFIX + name). */
  topic(name: string): string;
  pool: pg.Pool;
  store: EventStore;
  kafka: Kafka;
  logger: Logger;
}

/** Something a service runs beside its gRPC server (consumers, jobs); stopped on shutdown. */
export interface Worker {
  stop(): Promise<void>;
}

export interface GrpcServiceDefinition {
  /** Short name: release, change, configuration, deployment. Its events go to `eventsTopic(name)`. */
  name: EventSource;
  defaultPort: number;
  /** The service's own tables (read models, sequences), run after the event store's. */
  migrations?: Migration[];
  /** The tables its commands' projections write, which `rebuild-tables` writes again from its events. */
  queryTables?: QueryTables<DomainEvent>;
  services(ctx: ServiceContext): ServiceRegistration[];
  workers?(ctx: ServiceContext): Promise<Worker[]>;
}

export interface RunningService {
  port: number;
  context: ServiceContext;
  stop(): Promise<void>;
}

/**
 * Starts one event-sourced gRPC service: validated config, its database and migrations, the
 * event store, the outbox relay to rdm.<name>.events.v1, workers, and the gRPC server with
 * health and reflection. Returns once it serves; stop() shuts down in reverse order.
 */
export async function startGrpcService(
  definition: GrpcServiceDefinition,
  env: NodeJS.ProcessEnv = process.env,
): Promise<RunningService> {
  const config = loadConfig(grpcServiceEnv(definition.defaultPort), env);
  const logger = createLogger(definition.name, config.LOG_LEVEL);
  const pool = await openDatabase(config.DATABASE_URL, { logger });
  const stopObservingPool = observePoolUse(pool, definition.name);
  await runMigrations(pool, eventStoreMigrations);
  if (definition.migrations?.length)
    await runMigrations(pool, { component: definition.name, migrations: definition.migrations });

  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: `rdm-${definition.name}`, logger });
  const context: ServiceContext = {
    name: definition.name,
    topic: (name) => `${config.KAFKA_TOPIC_PREFIX}${name}`,
    pool,
    store: new EventStore(pool),
    kafka,
    logger,
  };
  const relay = await startRelay({
    pool,
    kafka,
    topic: context.topic(eventsTopic(definition.name)),
    source: `rdm/${definition.name}`,
    lingerMs: config.RELAY_LINGER_MS,
    logger,
  });

  const services = definition.services(context);
  const server = createGrpcServer({
    logger,
    verifier: verifierFromConfig(config),
    services,
    reflection: { imagePath: descriptorImagePath },
  });
  const port = await server.listen(config.GRPC_HOST, config.GRPC_PORT);
  // Without its database the service cannot answer: health says so until it is back.
  const healthNames = [undefined, ...services.map((s) => s.service.typeName)];
  const database = watchDatabase(pool, {
    logger,
    onChange: (available) => {
      for (const name of healthNames) server.health.setServing(name, available);
    },
  });
  logger.info({ host: config.GRPC_HOST, port }, `${definition.name} service listening`);
  // Workers start after the server: joining a consumer group can take a session timeout after
  // a crash (the dead member must expire first), and commands need not wait for that.
  const workers = (await definition.workers?.(context)) ?? [];

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      logger.info("shutting down");
      database.stop();
      await server.shutdown();
      for (const worker of workers.reverse()) await worker.stop();
      await relay.stop();
      stopObservingPool();
      await pool.end();
    })();
    return stopped;
  };
  return { port, context, stop };
}
