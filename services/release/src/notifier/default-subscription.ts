import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { type CommandHandler, isRuleViolation } from "@rdm/command-handler";
import type { Logger } from "@rdm/observability";
import {
  SubscriptionFilterSchema,
  SubscriptionStatus,
  TargetSchema,
} from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { CONFIGURATION_ACTOR } from "../domain/subscription/decide.js";
import type { SubscriptionCommand, SubscriptionEvent } from "../domain/subscription/types.js";
import {
  DEFAULT_SUBSCRIPTION_ID,
  secretFingerprint,
  subscriptionCommand,
  subscriptionStreamId,
  subscriptions,
} from "../store/subscriptions.js";

/**
 * Keeps the default subscription in line with RELEASE_WEBHOOK_URL / RELEASE_WEBHOOK_SECRET at
 * start: created, updated when either changed, paused while the URL is unset. Its deliveries are
 * the release's own NotificationRequested events, written with them (webhook-delivery.ts), as
 * before subscriptions existed, so ListNotificationDeliveries and the payload stay as they were.
 * Replicas starting together may race: the loser's refusal is the winner's work, so it is ignored.
 */
export async function ensureDefaultSubscription(
  handler: CommandHandler<SubscriptionEvent>,
  pool: Parameters<CommandHandler<SubscriptionEvent>["load"]>[0],
  config: { url: string | undefined; secret: string | undefined },
  logger: Logger,
): Promise<void> {
  const { state } = await handler.load(pool, {
    aggregate: subscriptions,
    streamId: subscriptionStreamId(DEFAULT_SUBSCRIPTION_ID),
  });
  const current = state.subscription;
  const settings = {
    name: "default (RELEASE_WEBHOOK_URL)",
    owner: CONFIGURATION_ACTOR,
    target: create(TargetSchema, { kind: { case: "webhook", value: { url: config.url ?? "" } } }),
    filter: create(SubscriptionFilterSchema, { eventTypes: ["rdm.release.v1.ReleaseNotificationRequested"] }),
    secretFingerprint: secretFingerprint(config.secret ?? ""),
  };
  const commands: SubscriptionCommand[] = [];
  const active = current?.status === SubscriptionStatus.ACTIVE;
  if (!config.url) {
    if (active) commands.push({ kind: "pauseSubscription", reason: "RELEASE_WEBHOOK_URL is not set" });
  } else if (!current) {
    commands.push({
      kind: "createSubscription",
      subscriptionId: DEFAULT_SUBSCRIPTION_ID,
      fromConfiguration: true,
      ...settings,
    });
  } else {
    const changed =
      current.target?.kind.value?.url !== config.url || current.secretFingerprint !== settings.secretFingerprint;
    if (changed) commands.push({ kind: "updateSubscription", ...settings });
    if (!active) commands.push({ kind: "resumeSubscription", deliverMissed: false });
  }
  for (const command of commands) await run(handler, command, config.secret, logger);
}

async function run(
  handler: CommandHandler<SubscriptionEvent>,
  command: SubscriptionCommand,
  secret: string | undefined,
  logger: Logger,
): Promise<void> {
  try {
    await handler.handle(
      { actor: CONFIGURATION_ACTOR, requestId: randomUUID() },
      {
        ...subscriptionCommand(DEFAULT_SUBSCRIPTION_ID, command, secret),
        response: TargetSchema,
        respond: () => create(TargetSchema),
        requestHash: command.kind,
      },
    );
    logger.info({ subscription_id: DEFAULT_SUBSCRIPTION_ID, command: command.kind }, "default subscription configured");
  } catch (error) {
    if (!isRuleViolation(error)) throw error;
  }
}
