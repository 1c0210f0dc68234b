import type { CommandHandler } from "@rdm/command-handler";
import { EVENT_SOURCES, eventsTopic, startConsumer, untilDatabaseAnswers } from "@rdm/messaging";
import type { Logger } from "@rdm/observability";
import type { Worker } from "@rdm/runtime";
import type { Kafka } from "kafkajs";
import type pg from "pg";
import type { SubscriptionEvent } from "../domain/subscription/types.js";
import { startSubscriptionDelivery } from "../jobs/subscription-delivery.js";
import { startTaskDeadlineScheduler } from "../jobs/task-deadline-scheduler.js";
import type { ReleaseServiceEvent } from "../store/event-codec.js";
import { ensureDefaultSubscription } from "./default-subscription.js";
import { matchEvents } from "./match-events.js";

export interface NotifierOptions {
  pool: pg.Pool;
  kafka: Kafka;
  logger: Logger;
  topic: (name: string) => string;
  handler: CommandHandler<SubscriptionEvent>;
  releaseHandler: CommandHandler<ReleaseServiceEvent>;
  clock: () => Date;
  config: {
    RELEASE_CONSUMER_GROUP: string;
    RELEASE_DLQ_TOPIC: string;
    RELEASE_CONSUMER_SESSION_TIMEOUT_MS: number;
    RELEASE_DEADLINE_POLL_MS: number;
    RELEASE_WEBHOOK_URL?: string | undefined;
    RELEASE_WEBHOOK_SECRET?: string | undefined;
    RELEASE_WEBHOOK_POLL_MS: number;
    RELEASE_WEBHOOK_BACKOFF_MS: number;
    RELEASE_WEBHOOK_MAX_ATTEMPTS: number;
    RELEASE_WEBHOOK_TIMEOUT_MS: number;
    NOTIFICATION_LINK_BASE_URL: string;
  };
}

/**
 * The notifier, hosted by the release process (one per installation, however many services
 * notify): the default subscription from configuration, the task deadline scheduler, one
 * consumer of all four services' topics that records the deliveries each subscription's filter
 * asks for, and the job that sends them.
 */
export async function startNotifier(options: NotifierOptions): Promise<Worker[]> {
  const { pool, kafka, logger, topic, handler, clock, config } = options;
  await untilDatabaseAnswers(
    () =>
      ensureDefaultSubscription(
        handler,
        pool,
        { url: config.RELEASE_WEBHOOK_URL, secret: config.RELEASE_WEBHOOK_SECRET },
        logger,
      ),
    { logger, what: "configuring the default subscription" },
  );
  const workers: Worker[] = [
    startTaskDeadlineScheduler({
      pool,
      handler: options.releaseHandler,
      clock,
      intervalMs: config.RELEASE_DEADLINE_POLL_MS,
      logger,
    }),
    startSubscriptionDelivery({
      pool,
      handler,
      clock,
      intervalMs: config.RELEASE_WEBHOOK_POLL_MS,
      backoffMs: config.RELEASE_WEBHOOK_BACKOFF_MS,
      maxAttempts: config.RELEASE_WEBHOOK_MAX_ATTEMPTS,
      timeoutMs: config.RELEASE_WEBHOOK_TIMEOUT_MS,
      logger,
    }),
  ];
  workers.push(
    await startConsumer({
      kafka,
      pool,
      groupId: `${config.RELEASE_CONSUMER_GROUP}.notifier`,
      topics: EVENT_SOURCES.map((source) => topic(eventsTopic(source))),
      ...matchEvents(config.NOTIFICATION_LINK_BASE_URL, clock, pool),
      deadLetterTopic: topic(config.RELEASE_DLQ_TOPIC),
      // A new group reads the topics from the start; what happened before a subscription was
      // created is never sent to it, so this costs one pass, not a flood.
      fromBeginning: true,
      sessionTimeoutMs: config.RELEASE_CONSUMER_SESSION_TIMEOUT_MS,
      logger,
    }),
  );
  return workers;
}
