import { CommandHandler, isUniqueViolation } from "@rdm/command-handler";
import { loadConfig, z } from "@rdm/config";
import type { EventStore } from "@rdm/eventstore";
import { DEPLOYMENT_EVENTS_TOPIC, startConsumer } from "@rdm/messaging";
import { type GrpcServiceDefinition, startGrpcService } from "@rdm/runtime";
import { configurationServiceHandlers } from "./api/configuration-service.js";
import { baselineProjector } from "./consumers/deployment-events.js";
import { configurationCodec } from "./store/event-codec.js";
import { configurationMigrations } from "./store/migrations.js";
import { configurationQueryTables } from "./store/query-tables.js";

/** A unique read-model key (an artifact's name and version) taken by a concurrent writer is a conflict like a version one. */
const commandHandler = (store: EventStore) =>
  new CommandHandler({ store, codec: configurationCodec, retry: { retryOn: isUniqueViolation } });

/** Settings of the service's own consumer (the rest is the shared gRPC service config). */
const consumerEnv = z.object({
  /** Consumer group of the baseline projector (one per deployment of the service). */
  CONFIGURATION_CONSUMER_GROUP: z.string().min(1).default("rdm-configuration.baselines"),
  CONFIGURATION_DLQ_TOPIC: z.string().min(1).default("rdm.configuration.dlq.v1"),
  /** Kafka group session timeout; tests on the mock broker lower it (see @rdm/messaging). */
  CONFIGURATION_CONSUMER_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000),
});

/**
 * The configuration service: CMDB (configuration items, relationships, impact analysis), the
 * Definitive Media Library, and per-environment baselines kept from rdm.deployment.events.v1.
 */
export function configurationServiceDefinition(env: NodeJS.ProcessEnv = process.env): GrpcServiceDefinition {
  const config = loadConfig(consumerEnv, env);
  return {
    name: "configuration",
    defaultPort: 50053,
    migrations: configurationMigrations,
    queryTables: configurationQueryTables,
    services: ({ store, pool }) => [configurationServiceHandlers({ store, pool, handler: commandHandler(store) })],
    async workers({ kafka, pool, store, logger, topic }) {
      const baselines = await startConsumer({
        kafka,
        pool,
        groupId: config.CONFIGURATION_CONSUMER_GROUP,
        topics: [topic(DEPLOYMENT_EVENTS_TOPIC)],
        deadLetterTopic: topic(config.CONFIGURATION_DLQ_TOPIC),
        handle: baselineProjector(commandHandler(store)),
        fromBeginning: true,
        logger: logger.child({ consumer: "baselines" }),
        sessionTimeoutMs: config.CONFIGURATION_CONSUMER_SESSION_TIMEOUT_MS,
      });
      return [baselines];
    },
  };
}

export const startConfigurationService = (env: NodeJS.ProcessEnv = process.env) =>
  startGrpcService(configurationServiceDefinition(env), env);
