// Subscriptions as an event-sourced aggregate: given / when / then over the pure decider, and
// the filter that decides which events each one receives.
import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { DecisionContext } from "@rdm/command-handler";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import * as ev from "@rdm/proto/gen/rdm/notification/v1/events_pb.js";
import {
  Severity,
  SubscriptionFilterSchema,
  SubscriptionStatus,
  TargetSchema,
} from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { deciderSpec } from "@rdm/testkit";
import { CONFIGURATION_ACTOR, decide } from "../src/domain/subscription/decide.js";
import { evolve, fold, initialState } from "../src/domain/subscription/evolve.js";
import { filterMatches, type NotifiedEvent, subjectsOf } from "../src/domain/subscription/matching.js";
import type { SubscriptionCommand, SubscriptionEvent } from "../src/domain/subscription/types.js";

const ID = "5b1d7c8e-1f0a-4c3e-9d2b-7a6e5f4c3b2a";
const T0 = new Date("2026-03-02T09:00:00Z");
const ctx = (actor = "rita", now = T0): DecisionContext => ({ actor, groups: [], now, newId: () => "id" });
const spec = deciderSpec({ decide, evolve, initialState });

const webhook = create(TargetSchema, { kind: { case: "webhook", value: { url: "https://hooks.example/a" } } });
const chat = create(TargetSchema, {
  kind: { case: "chat", value: { url: "https://chat.example/in", template: "{{title}} {{link}}" } },
});
const settings = { name: "sre", owner: "sam", target: webhook, filter: undefined, secretFingerprint: "abc123" };
const createCommand = (over: Partial<Extract<SubscriptionCommand, { kind: "createSubscription" }>> = {}) =>
  ({ kind: "createSubscription", subscriptionId: ID, fromConfiguration: false, ...settings, ...over }) as const;

/** Decided events, stamped with the time they happened as the command handler does. */
function history(...steps: [SubscriptionCommand, Date][]): SubscriptionEvent[] {
  const events: SubscriptionEvent[] = [];
  for (const [command, at] of steps)
    for (const e of spec.given(events).when(command, ctx("rita", at)).events())
      events.push({ ...e, metadata: create(EventMetadataSchema, { occurredAt: timestampFromDate(at) }) });
  return events;
}

test("created active, with the secret's fingerprint only", () => {
  spec
    .given([])
    .when(createCommand(), ctx())
    .then((events, after) => {
      expect(events).toEqual([
        create(ev.SubscriptionCreatedSchema, { subscriptionId: ID, ...settings, fromConfiguration: false }),
      ]);
      expect(after.subscription?.status).toBe(SubscriptionStatus.ACTIVE);
    });
  spec
    .given(history([createCommand(), T0]))
    .when(createCommand(), ctx())
    .thenFails("subscription.unique", "ALREADY_EXISTS");
  spec
    .given([])
    .when(createCommand({ secretFingerprint: "" }), ctx())
    .thenFails("subscription.webhook_secret");
  spec
    .given([])
    .when(createCommand({ target: chat, secretFingerprint: "" }), ctx())
    .then((events) => expect(events).toHaveLength(1));
});

test("an update keeps the secret unless given a new one; a webhook without any secret is refused", () => {
  const created = history([createCommand(), T0]);
  const after = fold(
    history(
      [createCommand(), T0],
      [{ kind: "updateSubscription", ...settings, name: "new", secretFingerprint: "" }, T0],
    ),
  );
  expect(after.subscription).toMatchObject({ name: "new", secretFingerprint: "abc123" });
  const fromChat = history([createCommand({ target: chat, secretFingerprint: "" }), T0]);
  spec
    .given(fromChat)
    .when({ kind: "updateSubscription", ...settings, secretFingerprint: "" }, ctx())
    .thenFails("subscription.webhook_secret");
  spec
    .given(created)
    .when({ kind: "deleteSubscription" }, ctx())
    .then((events) => expect(events).toHaveLength(1));
});

test("paused and resumed from the resume time, or with what it missed when asked", () => {
  const T1 = new Date(T0.getTime() + 60_000);
  const paused = history([createCommand(), T0], [{ kind: "pauseSubscription", reason: "maintenance" }, T0]);
  expect(fold(paused).subscription).toMatchObject({ status: SubscriptionStatus.PAUSED, statusReason: "maintenance" });
  spec.given(paused).when({ kind: "pauseSubscription", reason: "again" }, ctx()).thenFails("subscription.active");
  const resumed = fold([...paused, ...resumeAt(paused, false, T1)]);
  expect(resumed.subscription?.status).toBe(SubscriptionStatus.ACTIVE);
  expect(resumed.subscription?.activeSince).toEqual(timestampFromDate(T1));
  const withMissed = fold([...paused, ...resumeAt(paused, true, T1)]);
  expect(withMissed.subscription?.activeSince).toEqual(timestampFromDate(T0));
  spec
    .given(history([createCommand(), T0]))
    .when({ kind: "resumeSubscription", deliverMissed: false }, ctx())
    .thenFails("subscription.inactive");
});

function resumeAt(given: SubscriptionEvent[], deliverMissed: boolean, at: Date): SubscriptionEvent[] {
  return spec
    .given(given)
    .when({ kind: "resumeSubscription", deliverMissed }, ctx("rita", at))
    .events()
    .map((e) => ({ ...e, metadata: create(EventMetadataSchema, { occurredAt: timestampFromDate(at) }) }));
}

test("suspended with a reason by a failing target; a deleted one refuses everything", () => {
  const created = history([createCommand(), T0]);
  spec
    .given(created)
    .when({ kind: "suspendSubscription", reason: "HTTP 503 x8", deliveryId: "d1" }, ctx("system:notifier"))
    .then((_, after) =>
      expect(after.subscription).toMatchObject({ status: SubscriptionStatus.SUSPENDED, statusReason: "HTTP 503 x8" }),
    );
  const deleted = history([createCommand(), T0], [{ kind: "deleteSubscription" }, T0]);
  spec.given(deleted).when({ kind: "pauseSubscription", reason: "" }, ctx()).thenFails("subscription.not_deleted");
  spec.given([]).when({ kind: "pauseSubscription", reason: "" }, ctx()).thenFails("subscription.exists", "NOT_FOUND");
});

test("the subscription from RELEASE_WEBHOOK_URL is changed by the configuration only", () => {
  const configured = history([createCommand({ fromConfiguration: true }), T0]);
  spec.given(configured).when({ kind: "deleteSubscription" }, ctx("rita")).thenFails("subscription.user_owned");
  spec
    .given(configured)
    .when({ kind: "pauseSubscription", reason: "" }, ctx("rita"))
    .thenFails("subscription.user_owned");
  spec
    .given(configured)
    .when({ kind: "updateSubscription", ...settings }, ctx(CONFIGURATION_ACTOR))
    .then((e) => expect(e).toHaveLength(1));
});

describe("filter", () => {
  const event = (over: Partial<NotifiedEvent> = {}): NotifiedEvent => ({
    type: "rdm.deployment.v1.DeploymentFailed",
    occurredAt: T0,
    json: {
      deploymentId: "dep-1",
      releaseId: ID,
      environment: "production",
      artifacts: [{ targetCiIds: ["svc-pay"] }],
    },
    releaseType: ReleaseType.EMERGENCY,
    ...over,
  });
  const subscription = (filter: Parameters<typeof create<typeof SubscriptionFilterSchema>>[1]) =>
    fold(history([createCommand({ filter: create(SubscriptionFilterSchema, filter) }), T0]))
      .subscription as NonNullable<ReturnType<typeof fold>["subscription"]>;

  test("every listed dimension must match; ids are found at any depth", () => {
    expect(subjectsOf(event().json).serviceIds).toEqual(new Set(["svc-pay"]));
    expect(filterMatches(subscription({}), event())).toBe(true);
    expect(filterMatches(subscription({ environments: ["production"], serviceIds: ["svc-pay"] }), event())).toBe(true);
    expect(filterMatches(subscription({ environments: ["staging"] }), event())).toBe(false);
    expect(filterMatches(subscription({ eventTypes: ["rdm.release.v1.ReleaseRegistered"] }), event())).toBe(false);
    expect(filterMatches(subscription({ releaseTypes: [ReleaseType.MAJOR] }), event())).toBe(false);
    expect(filterMatches(subscription({ releaseTypes: [ReleaseType.EMERGENCY] }), event())).toBe(true);
    expect(filterMatches(subscription({ releaseIds: [ID] }), event({ json: {} }))).toBe(false);
  });

  test("a deployment's events match the services its release's package maps artifacts to, besides its targets", () => {
    const cart = subscription({ serviceIds: ["svc-cart"] });
    expect(filterMatches(cart, event())).toBe(false);
    expect(filterMatches(cart, event({ deploymentServices: ["svc-cart"] }))).toBe(true);
    expect(filterMatches(subscription({ serviceIds: ["svc-pay"] }), event({ deploymentServices: ["svc-cart"] }))).toBe(
      true,
    );
  });

  test("a freeze (declared or lifted) matches the environments and CIs of its scope; one of everything matches every filter", () => {
    const freeze = (type: string, scope: JsonObject) => event({ type, json: { freezeWindowId: "f-1", scope } });
    for (const type of ["rdm.change.v1.FreezeWindowDeclared", "rdm.change.v1.FreezeWindowLifted"]) {
      const scoped = freeze(type, { environments: ["production"], ciIds: ["svc-pay"] });
      expect(filterMatches(subscription({ environments: ["production"] }), scoped)).toBe(true);
      expect(filterMatches(subscription({ environments: ["staging"] }), scoped)).toBe(false);
      expect(filterMatches(subscription({ serviceIds: ["svc-pay"] }), scoped)).toBe(true);
      expect(filterMatches(subscription({ serviceIds: ["svc-cart"] }), scoped)).toBe(false);
      const everything = freeze(type, { all: true });
      expect(filterMatches(subscription({ environments: ["staging"], serviceIds: ["svc-cart"] }), everything)).toBe(
        true,
      );
      // Other dimensions still apply.
      expect(filterMatches(subscription({ environments: ["staging"], releaseIds: [ID] }), everything)).toBe(false);
    }
    // A lift recorded before it carried its scope names none.
    const bare = event({ type: "rdm.change.v1.FreezeWindowLifted", json: { freezeWindowId: "f-1" } });
    expect(filterMatches(subscription({ environments: ["production"] }), bare)).toBe(false);
  });

  test("a deployment's plan names its linked changes, its outcome those it implements, its other events them by lookup; a change's other events, its environments by lookup", () => {
    const change = "5f1d2c3b-8a7e-4d6c-9b0a-1e2f3a4b5c6d";
    const implementing = event({ json: { ...event().json, changeRequestIds: [change] } });
    expect(filterMatches(subscription({ changeRequestIds: [change] }), implementing)).toBe(true);
    const planned = event({ type: "rdm.deployment.v1.DeploymentPlanned", json: { linkedChangeIds: [change] } });
    expect(filterMatches(subscription({ changeRequestIds: [change] }), planned)).toBe(true);
    // An id is a UUID whatever its case, on either side.
    const upper = event({
      type: "rdm.deployment.v1.DeploymentPlanned",
      json: { linkedChangeIds: [change.toUpperCase()] },
    });
    expect(filterMatches(subscription({ changeRequestIds: [change] }), upper)).toBe(true);
    expect(filterMatches(subscription({ changeRequestIds: [change.toUpperCase()] }), planned)).toBe(true);
    expect(filterMatches(subscription({ changeRequestIds: [change] }), event())).toBe(false);
    // A deployment's other events, by the changes its plan and start named.
    const stepFailed = { type: "rdm.deployment.v1.DeploymentStepFailed", json: { deploymentId: ID } };
    expect(filterMatches(subscription({ changeRequestIds: [change] }), event(stepFailed))).toBe(false);
    const ofChange = event({ ...stepFailed, deploymentChanges: [change.toUpperCase()] });
    expect(filterMatches(subscription({ changeRequestIds: [change] }), ofChange)).toBe(true);
    const rejected = { type: "rdm.change.v1.ChangeRequestRejected", json: { changeRequestId: change } };
    const production = subscription({ environments: ["production"] });
    expect(filterMatches(production, event(rejected))).toBe(false);
    expect(filterMatches(production, event({ ...rejected, changeEnvironments: ["production"] }))).toBe(true);
  });

  test("a change's environments and an environment's own definition name environments", () => {
    const production = subscription({ environments: ["production"] });
    const change = { type: "rdm.change.v1.ChangeRequestRaised", json: { environments: ["staging", "production"] } };
    expect(filterMatches(production, event(change))).toBe(true);
    const frozen = { type: "rdm.deployment.v1.EnvironmentChanged", json: { environment: { name: "production" } } };
    expect(filterMatches(production, event(frozen))).toBe(true);
    expect(filterMatches(subscription({ environments: ["dev"] }), event(frozen))).toBe(false);
    // A subscription's own event names environments in its filter: it is not about them.
    const created = {
      type: "rdm.notification.v1.SubscriptionCreated",
      json: { filter: { environments: ["production"] } },
    };
    expect(filterMatches(production, event(created))).toBe(false);
  });

  test("a minimum severity keeps the failures and drops the plain facts", () => {
    const critical = subscription({ minSeverity: Severity.CRITICAL });
    expect(filterMatches(critical, event())).toBe(true);
    expect(filterMatches(critical, event({ type: "rdm.deployment.v1.DeploymentSucceeded" }))).toBe(false);
    expect(
      filterMatches(
        subscription({ minSeverity: Severity.WARNING }),
        event({ type: "rdm.release.v1.ReleaseTaskOverdue" }),
      ),
    ).toBe(true);
    // A change withdrawn weighs like a rejected one: a warning.
    const warning = subscription({ minSeverity: Severity.WARNING });
    expect(filterMatches(warning, event({ type: "rdm.change.v1.ChangeRequestCancelled" }))).toBe(true);
    expect(filterMatches(critical, event({ type: "rdm.change.v1.ChangeRequestCancelled" }))).toBe(false);
  });
});
