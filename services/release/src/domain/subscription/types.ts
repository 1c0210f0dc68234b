import type { DecisionContext } from "@rdm/command-handler";
import type * as ev from "@rdm/proto/gen/rdm/notification/v1/events_pb.js";
import type { Subscription, SubscriptionFilter, Target } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";

/** Events of a subscription's stream. */
export type SubscriptionEvent =
  | ev.SubscriptionCreated
  | ev.SubscriptionUpdated
  | ev.SubscriptionPaused
  | ev.SubscriptionSuspended
  | ev.SubscriptionResumed
  | ev.SubscriptionDeleted;

export interface SubscriptionState {
  /** Undefined until created. */
  subscription: Subscription | undefined;
}

/** What a subscription is: set at creation, replaced as a whole by an update. */
export interface SubscriptionSettings {
  name: string;
  owner: string;
  target: Target;
  filter: SubscriptionFilter | undefined;
  /** Fingerprint of a new secret; empty on update keeps the current one. */
  secretFingerprint: string;
}

export type SubscriptionCommand =
  | ({ kind: "createSubscription"; subscriptionId: string; fromConfiguration: boolean } & SubscriptionSettings)
  | ({ kind: "updateSubscription" } & SubscriptionSettings)
  | { kind: "pauseSubscription"; reason: string }
  | { kind: "resumeSubscription"; deliverMissed: boolean }
  | { kind: "suspendSubscription"; reason: string; deliveryId: string }
  | { kind: "deleteSubscription" };

export type SubscriptionCommandOf<K extends SubscriptionCommand["kind"]> = Extract<SubscriptionCommand, { kind: K }>;

export type { DecisionContext };
