import { CommandHandler } from "@rdm/command-handler";
import { loadConfig, z } from "@rdm/config";
import type { EventStore } from "@rdm/eventstore";
import { CHANGE_EVENTS_TOPIC, DEPLOYMENT_EVENTS_TOPIC, startConsumer } from "@rdm/messaging";
import { type GrpcServiceDefinition, startGrpcService, type Worker } from "@rdm/runtime";
import type pg from "pg";
import { notificationServiceHandlers } from "./api/notification-service.js";
import { releaseServiceHandlers } from "./api/release-service.js";
import { changeEventConsumer } from "./consumers/change-links.js";
import { deploymentEnvironmentMigrations, reactToDeploymentEvent } from "./consumers/deployment-outcomes.js";
import { startDeadlineScheduler } from "./jobs/deadline-scheduler.js";
import { undeliverable } from "./jobs/signed-post.js";
import { startWebhookDelivery } from "./jobs/webhook-delivery.js";
import { startNotifier } from "./notifier/notifier.js";
import { type ReleaseServiceEvent, releaseCodec } from "./store/event-codec.js";
import { ReleaseModelStore } from "./store/model-store.js";
import { releaseQueryTables } from "./store/query-tables.js";
import { releaseKeys } from "./store/release-keys.js";
import { releaseMigrations } from "./store/release-tables.js";
import { subscriptionCodec } from "./store/subscriptions.js";

/** The release service's own variables (beside the shared gRPC service ones). */
export const releaseEnv = z
  .object({
    /** Consumer group prefix: `.change-requests` (read model, links), `.deployments` (reactions). */
    RELEASE_CONSUMER_GROUP: z.string().min(1).default("rdm-release"),
    RELEASE_DLQ_TOPIC: z.string().min(1).default("rdm.release.dlq.v1"),
    RELEASE_DEADLINE_POLL_MS: z.coerce.number().int().min(10).default(5_000),
    /** Where NotificationRequested events are POSTed; no webhook delivery when unset. */
    RELEASE_WEBHOOK_URL: z
      .url()
      .refine((url) => !undeliverable(url), { error: (issue) => undeliverable(String(issue.input)) })
      .optional(),
    RELEASE_WEBHOOK_SECRET: z.string().min(16, "must be at least 16 characters").optional(),
    RELEASE_WEBHOOK_POLL_MS: z.coerce.number().int().min(10).default(1_000),
    RELEASE_WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(1).default(2_000),
    RELEASE_WEBHOOK_MAX_ATTEMPTS: z.coerce.number().int().min(1).default(8),
    RELEASE_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(300_000).default(5_000),
    /** Kafka group session timeout of the consumer (tests use short ones). */
    RELEASE_CONSUMER_SESSION_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000),
    /** Base URL of the HTTP gateway, for the links in notification payloads. */
    NOTIFICATION_LINK_BASE_URL: z.url().default("http://localhost:8080"),
  })
  .refine((c) => !c.RELEASE_WEBHOOK_URL || c.RELEASE_WEBHOOK_SECRET, {
    message: "RELEASE_WEBHOOK_SECRET is required with RELEASE_WEBHOOK_URL (deliveries are signed)",
    path: ["RELEASE_WEBHOOK_SECRET"],
  });

export interface ReleaseServiceOptions {
  /** The service's clock (deadlines, timestamps); tests inject one so they never sleep. */
  clock?: () => Date;
}

export function createReleaseService(
  env: NodeJS.ProcessEnv = process.env,
  options: ReleaseServiceOptions = {},
): GrpcServiceDefinition {
  const config = loadConfig(releaseEnv, env);
  const clock = options.clock ?? (() => new Date());
  const commandHandler = (store: EventStore) => new CommandHandler({ store, codec: releaseCodec, clock });
  const subscriptionHandler = (store: EventStore) => new CommandHandler({ store, codec: subscriptionCodec, clock });
  // One per service: the API reads models through it, a worker keeps its cache current.
  let models: ReleaseModelStore | undefined;
  const modelsOf = (store: EventStore, pool: pg.Pool) => {
    models ??= new ReleaseModelStore(store, pool);
    return models;
  };
  return {
    name: "release",
    defaultPort: 50051,
    migrations: [...releaseMigrations, ...deploymentEnvironmentMigrations],
    queryTables: releaseQueryTables,
    services: ({ store, pool }) => [
      releaseServiceHandlers({
        store,
        pool,
        handler: commandHandler(store),
        models: modelsOf(store, pool),
        keys: releaseKeys(pool),
        clock,
      }),
      notificationServiceHandlers({
        pool,
        handler: subscriptionHandler(store),
        clock,
        linkBaseUrl: config.NOTIFICATION_LINK_BASE_URL,
        timeoutMs: config.RELEASE_WEBHOOK_TIMEOUT_MS,
      }),
    ],
    async workers(context): Promise<Worker[]> {
      const { store, pool, kafka, logger, topic } = context;
      const workers: Worker[] = [modelsOf(store, pool).listen(logger)];
      workers.push(
        startDeadlineScheduler({
          pool,
          handler: commandHandler(store),
          clock,
          intervalMs: config.RELEASE_DEADLINE_POLL_MS,
          logger,
        }),
      );
      if (config.RELEASE_WEBHOOK_URL && config.RELEASE_WEBHOOK_SECRET) {
        workers.push(
          startWebhookDelivery({
            pool,
            url: config.RELEASE_WEBHOOK_URL,
            secret: config.RELEASE_WEBHOOK_SECRET,
            clock,
            intervalMs: config.RELEASE_WEBHOOK_POLL_MS,
            backoffMs: config.RELEASE_WEBHOOK_BACKOFF_MS,
            maxAttempts: config.RELEASE_WEBHOOK_MAX_ATTEMPTS,
            timeoutMs: config.RELEASE_WEBHOOK_TIMEOUT_MS,
            logger,
          }),
        );
      }
      workers.push(
        ...(await startNotifier({
          pool,
          kafka,
          logger,
          topic,
          handler: subscriptionHandler(store),
          releaseHandler: commandHandler(store),
          clock,
          config,
        })),
      );
      workers.push(...(await startReleaseConsumers(context, config, commandHandler(store))));
      return workers;
    },
  };
}

type WorkerContext = Parameters<NonNullable<GrpcServiceDefinition["workers"]>>[0];

/**
 * The release's own consumers: change states for the gates and the links a change asks of a
 * release, and the deployment outcomes' reactions.
 */
async function startReleaseConsumers(
  { pool, kafka, logger, topic }: WorkerContext,
  config: ReturnType<typeof loadConfig<typeof releaseEnv>>,
  handler: CommandHandler<ReleaseServiceEvent>,
): Promise<Worker[]> {
  const workers: Worker[] = [];
  const reactions = { handler, logger };
  workers.push(
    await startConsumer({
      kafka,
      pool,
      groupId: `${config.RELEASE_CONSUMER_GROUP}.change-requests`,
      topics: [topic(CHANGE_EVENTS_TOPIC)],
      ...changeEventConsumer(reactions),
      deadLetterTopic: topic(config.RELEASE_DLQ_TOPIC),
      fromBeginning: true,
      sessionTimeoutMs: config.RELEASE_CONSUMER_SESSION_TIMEOUT_MS,
      logger,
    }),
  );
  workers.push(
    await startConsumer({
      kafka,
      pool,
      groupId: `${config.RELEASE_CONSUMER_GROUP}.deployments`,
      topics: [topic(DEPLOYMENT_EVENTS_TOPIC)],
      handle: (event, tx) => reactToDeploymentEvent(event, tx, reactions),
      deadLetterTopic: topic(config.RELEASE_DLQ_TOPIC),
      fromBeginning: true,
      sessionTimeoutMs: config.RELEASE_CONSUMER_SESSION_TIMEOUT_MS,
      logger,
    }),
  );
  return workers;
}

export const startReleaseService = (env: NodeJS.ProcessEnv = process.env, options: ReleaseServiceOptions = {}) =>
  startGrpcService(createReleaseService(env, options), env);
