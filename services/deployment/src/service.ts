import { componentEnv, loadConfig, z } from "@rdm/config";
import { CHANGE_EVENTS_TOPIC, CONFIGURATION_EVENTS_TOPIC, RELEASE_EVENTS_TOPIC, startConsumer } from "@rdm/messaging";
import { type GrpcServiceDefinition, startGrpcService } from "@rdm/runtime";
import { deploymentCommandHandler } from "./api/commands.js";
import { deploymentServiceHandlers } from "./api/deployment-service.js";
import { cancelDeploymentsOfAbandoned } from "./consumers/release-abandonment.js";
import {
  applyChangeEvent,
  applyConfigurationEvent,
  applyReleaseEvent,
  UPSTREAM_FACT_EVENTS,
  upstreamFactsMigrations,
} from "./consumers/upstream-facts.js";
import { startLeaseSweep } from "./jobs/lease-sweep.js";
import { deploymentMigrations } from "./store/migrations.js";
import { deploymentQueryTables } from "./store/query-tables.js";

/** The deployment service's own settings (beside the shared gRPC service ones). */
export const deploymentConsumerEnv = componentEnv({
  /** Consumer group prefix of the gate read models (release, change, configuration topics). */
  DEPLOYMENT_CONSUMER_GROUP: z.string().min(1).default("rdm-deployment"),
  DEPLOYMENT_DLQ_TOPIC: z.string().min(1).default("rdm.deployment.dlq.v1"),
  /** Kafka group session timeout; tests against the mock broker use a short one. */
  DEPLOYMENT_CONSUMER_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000),
  /** How often lapsed leases nobody took over are returned to the queue. */
  DEPLOYMENT_LEASE_SWEEP_MS: z.coerce.number().int().min(10).default(5_000),
});

/**
 * The deployment service: environments in a promotion order, deployment plans expanded by
 * strategy into steps, the start gates (from its read models of the release, change and
 * configuration topics), the executor protocol and the sweep of lapsed leases. Events go to
 * rdm.deployment.events.v1.
 */
export function deploymentServiceDefinition(env: NodeJS.ProcessEnv = process.env): GrpcServiceDefinition {
  return {
    name: "deployment",
    defaultPort: 50054,
    migrations: [...deploymentMigrations, ...upstreamFactsMigrations],
    queryTables: deploymentQueryTables,
    services: ({ store, pool }) => [deploymentServiceHandlers({ store, pool })],
    async workers({ kafka, pool, store, logger, topic }) {
      const config = loadConfig(deploymentConsumerEnv, env);
      const common = {
        kafka,
        pool,
        deadLetterTopic: topic(config.DEPLOYMENT_DLQ_TOPIC),
        fromBeginning: true,
        sessionTimeoutMs: config.DEPLOYMENT_CONSUMER_SESSION_TIMEOUT_MS,
        logger,
      };
      const handler = deploymentCommandHandler(store, () => new Date());
      const sweep = startLeaseSweep({ pool, handler, intervalMs: config.DEPLOYMENT_LEASE_SWEEP_MS, logger });
      // One group per topic, so a slow or failing topic never holds the others back.
      const consumers = await Promise.all([
        startConsumer({
          ...common,
          groupId: `${config.DEPLOYMENT_CONSUMER_GROUP}.releases`,
          topics: [topic(RELEASE_EVENTS_TOPIC)],
          handle: async (event, tx) => {
            await applyReleaseEvent(event, tx);
            await cancelDeploymentsOfAbandoned(event, tx, { handler, logger });
          },
          accepts: (event) => UPSTREAM_FACT_EVENTS.release.has(event.type),
        }),
        startConsumer({
          ...common,
          groupId: `${config.DEPLOYMENT_CONSUMER_GROUP}.changes`,
          topics: [topic(CHANGE_EVENTS_TOPIC)],
          handle: (event, tx) => applyChangeEvent(event, tx),
          accepts: (event) => UPSTREAM_FACT_EVENTS.change.has(event.type),
        }),
        startConsumer({
          ...common,
          groupId: `${config.DEPLOYMENT_CONSUMER_GROUP}.configuration`,
          topics: [topic(CONFIGURATION_EVENTS_TOPIC)],
          handle: (event, tx) => applyConfigurationEvent(event, tx),
          accepts: (event) => UPSTREAM_FACT_EVENTS.configuration.has(event.type),
        }),
      ]);
      return [sweep, ...consumers];
    },
  };
}

export const startDeploymentService = (env: NodeJS.ProcessEnv = process.env) =>
  startGrpcService(deploymentServiceDefinition(env), env);
