import { clone, create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  type Subscription,
  SubscriptionSchema,
  SubscriptionStatus,
} from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import type { SubscriptionEvent, SubscriptionState } from "./types.js";

export const initialState = (): SubscriptionState => ({ subscription: undefined });

/** When the event happened (its metadata; the epoch for unstamped events in specs). */
const at = (event: SubscriptionEvent) => event.metadata?.occurredAt ?? timestampFromDate(new Date(0));

/** Applies one event to the state (pure: the state passed in is not changed). */
export function evolve(state: SubscriptionState, event: SubscriptionEvent): SubscriptionState {
  if (event.$typeName === "rdm.notification.v1.SubscriptionCreated") {
    const { metadata: _m, $typeName: _t, ...fields } = event;
    return {
      subscription: create(SubscriptionSchema, {
        ...fields,
        status: SubscriptionStatus.ACTIVE,
        activeSince: at(event),
        createdAt: at(event),
        updatedAt: at(event),
      }),
    };
  }
  if (!state.subscription) return state;
  const s: Subscription = clone(SubscriptionSchema, state.subscription);
  s.updatedAt = at(event);
  switch (event.$typeName) {
    case "rdm.notification.v1.SubscriptionUpdated": {
      const { metadata: _m, $typeName: _t, secretFingerprint, ...fields } = event;
      Object.assign(s, fields, secretFingerprint ? { secretFingerprint } : {});
      break;
    }
    case "rdm.notification.v1.SubscriptionPaused":
      s.status = SubscriptionStatus.PAUSED;
      s.statusReason = event.reason;
      break;
    case "rdm.notification.v1.SubscriptionSuspended":
      s.status = SubscriptionStatus.SUSPENDED;
      s.statusReason = event.reason;
      break;
    case "rdm.notification.v1.SubscriptionResumed":
      s.status = SubscriptionStatus.ACTIVE;
      s.statusReason = "";
      // With deliver_missed, what happened while it was inactive is still its to receive.
      if (!event.deliverMissed) s.activeSince = at(event);
      break;
    case "rdm.notification.v1.SubscriptionDeleted":
      s.status = SubscriptionStatus.DELETED;
      s.statusReason = "";
      break;
  }
  return { subscription: s };
}

export const fold = (events: SubscriptionEvent[], from: SubscriptionState = initialState()) =>
  events.reduce(evolve, from);
