import { CommandHandler } from "@rdm/command-handler";
import { componentEnv, loadConfig, z } from "@rdm/config";
import type { EventStore } from "@rdm/eventstore";
import { DEPLOYMENT_EVENTS_TOPIC, RELEASE_EVENTS_TOPIC, startConsumer } from "@rdm/messaging";
import { type GrpcServiceDefinition, startGrpcService } from "@rdm/runtime";
import { changeServiceHandlers } from "./api/change-service.js";
import { RELEASE_LINK_EVENTS, reactToDeploymentEvent, reactToReleaseEvent } from "./consumers/lifecycle-reactions.js";
import { changeCodec } from "./store/event-codec.js";
import { changeQueryTables } from "./store/query-tables.js";
import { readModelMigrations } from "./store/read-model.js";

const commandHandler = (store: EventStore) => new CommandHandler({ store, codec: changeCodec });

/** The change service's own settings (beside the shared gRPC service ones). */
export const changeConsumerEnv = componentEnv({
  /** Token groups (`groups` claim) whose members vote on NORMAL (CAB) and EMERGENCY (ECAB) changes. */
  CHANGE_CAB_GROUP: z.string().min(1).default("cab"),
  CHANGE_ECAB_GROUP: z.string().min(1).default("ecab"),
  /** Consumer group of the reactions to release and deployment events. */
  CHANGE_CONSUMER_GROUP: z.string().min(1).default("rdm-change"),
  CHANGE_DLQ_TOPIC: z.string().min(1).default("rdm.change.dlq.v1"),
  /** Kafka group session timeout; tests against the mock broker use a short one. */
  CHANGE_CONSUMER_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000),
});

/**
 * The change service: RFCs through CAB/ECAB to closure, the change calendar (freeze windows,
 * collisions), query tables in its own database, and reactions to the linked releases'
 * release and deployment events. Events go to rdm.change.events.v1.
 */
export function changeServiceDefinition(env: NodeJS.ProcessEnv = process.env): GrpcServiceDefinition {
  return {
    name: "change",
    defaultPort: 50052,
    migrations: readModelMigrations,
    queryTables: changeQueryTables,
    services: ({ store, pool }) => {
      const config = loadConfig(changeConsumerEnv, env);
      const boardGroups = { cab: config.CHANGE_CAB_GROUP, ecab: config.CHANGE_ECAB_GROUP };
      return [changeServiceHandlers({ pool, handler: commandHandler(store), boardGroups })];
    },
    async workers({ kafka, pool, store, logger, topic }) {
      const config = loadConfig(changeConsumerEnv, env);
      const reactions = { handler: commandHandler(store), logger };
      const common = {
        kafka,
        pool,
        deadLetterTopic: topic(config.CHANGE_DLQ_TOPIC),
        fromBeginning: true,
        sessionTimeoutMs: config.CHANGE_CONSUMER_SESSION_TIMEOUT_MS,
        logger,
      };
      // One group per topic, so a slow or failing topic never holds the other back; they join
      // their groups concurrently.
      return Promise.all([
        startConsumer({
          ...common,
          groupId: `${config.CHANGE_CONSUMER_GROUP}.deployments`,
          topics: [topic(DEPLOYMENT_EVENTS_TOPIC)],
          handle: (event, tx) => reactToDeploymentEvent(event, tx, reactions),
        }),
        startConsumer({
          ...common,
          groupId: `${config.CHANGE_CONSUMER_GROUP}.releases`,
          topics: [topic(RELEASE_EVENTS_TOPIC)],
          handle: (event, tx) => reactToReleaseEvent(event, tx, reactions),
          accepts: (event) => RELEASE_LINK_EVENTS.has(event.type),
        }),
      ]);
    },
  };
}

export const startChangeService = (env: NodeJS.ProcessEnv = process.env) =>
  startGrpcService(changeServiceDefinition(env), env);
