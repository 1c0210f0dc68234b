import { create } from "@bufbuild/protobuf";
import { RuleViolation, type RuleViolationCode } from "@rdm/command-handler";
import * as ev from "@rdm/proto/gen/rdm/notification/v1/events_pb.js";
import { type Subscription, SubscriptionStatus } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import type {
  DecisionContext,
  SubscriptionCommand,
  SubscriptionCommandOf,
  SubscriptionEvent,
  SubscriptionSettings,
  SubscriptionState,
} from "./types.js";

/** The actor that keeps the subscription configured by RELEASE_WEBHOOK_URL in line with the configuration. */
export const CONFIGURATION_ACTOR = "system:configuration";

const refuse = (
  rule: string,
  message: string,
  code: RuleViolationCode = "FAILED_PRECONDITION",
  subject = "subscription",
): never => {
  throw new RuleViolation(code, rule, message, { subject, resourceType: "subscription" });
};

/** The subscription, refused NOT_FOUND if it does not exist and FAILED_PRECONDITION if deleted. */
export function requireLive(state: SubscriptionState): Subscription {
  const s = state.subscription;
  if (!s) return refuse("subscription.exists", "subscription not found", "NOT_FOUND", "");
  if (s.status === SubscriptionStatus.DELETED) refuse("subscription.not_deleted", "the subscription was deleted");
  return s;
}

/** A webhook target signs with its secret: one must exist after the command. */
function requireSecret(settings: SubscriptionSettings, current: Subscription | undefined): void {
  if (settings.target.kind.case === "webhook" && !settings.secretFingerprint && !current?.secretFingerprint)
    refuse("subscription.webhook_secret", "a webhook target needs a secret", "FAILED_PRECONDITION", "secret");
}

/** Only the configuration changes what it configured; users may still pause and resume it. */
function requireUserOwned(s: Subscription, ctx: DecisionContext): void {
  if (s.fromConfiguration && ctx.actor !== CONFIGURATION_ACTOR)
    refuse("subscription.user_owned", "this subscription is set by RELEASE_WEBHOOK_URL; change the configuration");
}

const settingsOf = ({ name, owner, target, filter, secretFingerprint }: SubscriptionSettings) => ({
  name,
  owner,
  target,
  filter,
  secretFingerprint,
});

function createSubscription(command: SubscriptionCommandOf<"createSubscription">, state: SubscriptionState) {
  if (state.subscription) refuse("subscription.unique", "the subscription exists already", "ALREADY_EXISTS");
  requireSecret(command, undefined);
  return [
    create(ev.SubscriptionCreatedSchema, {
      subscriptionId: command.subscriptionId,
      fromConfiguration: command.fromConfiguration,
      ...settingsOf(command),
    }),
  ];
}

function updateSubscription(
  command: SubscriptionCommandOf<"updateSubscription">,
  s: Subscription,
  ctx: DecisionContext,
) {
  requireUserOwned(s, ctx);
  requireSecret(command, command.target.kind.case === s.target?.kind.case ? s : undefined);
  return [create(ev.SubscriptionUpdatedSchema, { subscriptionId: s.subscriptionId, ...settingsOf(command) })];
}

/** Decides a command against the state; returns the events to append or throws a RuleViolation. */
export function decide(
  command: SubscriptionCommand,
  state: SubscriptionState,
  ctx: DecisionContext,
): SubscriptionEvent[] {
  if (command.kind === "createSubscription") return createSubscription(command, state);
  const s = requireLive(state);
  const subscriptionId = s.subscriptionId;
  switch (command.kind) {
    case "updateSubscription":
      return updateSubscription(command, s, ctx);
    case "pauseSubscription":
      requireUserOwned(s, ctx);
      if (s.status !== SubscriptionStatus.ACTIVE) refuse("subscription.active", "only an active subscription pauses");
      return [create(ev.SubscriptionPausedSchema, { subscriptionId, reason: command.reason })];
    case "suspendSubscription":
      if (s.status !== SubscriptionStatus.ACTIVE)
        refuse("subscription.active", "only an active subscription is suspended");
      return [
        create(ev.SubscriptionSuspendedSchema, {
          subscriptionId,
          reason: command.reason,
          deliveryId: command.deliveryId,
        }),
      ];
    case "resumeSubscription":
      requireUserOwned(s, ctx);
      if (s.status === SubscriptionStatus.ACTIVE) refuse("subscription.inactive", "the subscription is active already");
      return [create(ev.SubscriptionResumedSchema, { subscriptionId, deliverMissed: command.deliverMissed })];
    case "deleteSubscription":
      requireUserOwned(s, ctx);
      return [create(ev.SubscriptionDeletedSchema, { subscriptionId })];
    default:
      return unknownCommand(command);
  }
}

function unknownCommand(command: never): never {
  throw new Error(`unknown subscription command ${(command as { kind?: unknown }).kind}`);
}
