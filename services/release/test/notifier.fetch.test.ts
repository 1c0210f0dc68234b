// The notifier's handling of one fetch, against real PostgreSQL: a deployment's events match a
// subscription filtered by change by what its earlier events named, in the same fetch (before
// anything is kept) and in later ones (by what was kept, a list that only grows and that a
// redelivery leaves as it is, until its begin names the changes it implements), and until its
// start by the changes linked to its release; a change's events are titled by the key its raise
// named. A deployment's events match a subscription filtered by service by the targets its plan
// named, kept beside its changes.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { eventStoreMigrations, runMigrations, withTransaction } from "@rdm/eventstore";
import type { CloudEvent } from "@rdm/messaging";
import {
  ChangeImplementationStartedSchema,
  ChangeRequestRaisedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import {
  DeploymentApprovalGrantedSchema,
  DeploymentCancelledSchema,
  DeploymentPlannedSchema,
  DeploymentRollbackStartedSchema,
  DeploymentScheduledSchema,
  DeploymentStartedSchema,
  DeploymentStepFailedSchema,
  DeploymentSucceededSchema,
  StepKind,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { SubscriptionSchema, SubscriptionStatus } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { ReleaseSchema } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase, PublishedStreams, type TestDatabase } from "@rdm/testkit";
import type pg from "pg";
import { deploymentEnvironmentMigrations } from "../src/consumers/deployment-outcomes.js";
import { matchEvents } from "../src/notifier/match-events.js";
import { saveSubscription } from "../src/store/notification-tables.js";
import { releaseMigrations } from "../src/store/release-tables.js";

let db: TestDatabase;
let pool: pg.Pool;
const at = new Date("2026-11-02T10:00:00Z");
const notifier = () => matchEvents("http://gateway.test", () => at, pool);
const deployments = new PublishedStreams("dora");
const changes = new PublishedStreams("carl");

beforeAll(async () => {
  db = await createTestDatabase("release_notifier_fetch");
  pool = await openDatabase(db.url);
  await runMigrations(pool, eventStoreMigrations);
  await runMigrations(pool, {
    component: "release",
    migrations: [...releaseMigrations, ...deploymentEnvironmentMigrations],
  });
});

afterAll(async () => {
  await pool?.end();
  await db?.drop();
});

/** An active subscription, created before every event here, filtered by these changes. */
async function subscribedTo(...changeRequestIds: string[]) {
  return subscribed({ changeRequestIds });
}

async function subscribed(filter: { changeRequestIds?: string[]; eventTypes?: string[]; serviceIds?: string[] }) {
  const subscriptionId = randomUUID();
  const since = timestampFromDate(new Date(at.getTime() - 60_000));
  await saveSubscription(
    pool,
    create(SubscriptionSchema, {
      subscriptionId,
      owner: "rita",
      status: SubscriptionStatus.ACTIVE,
      createdAt: since,
      activeSince: since,
      filter,
    }),
  );
  return subscriptionId;
}

type Schema =
  | typeof ChangeRequestRaisedSchema
  | typeof ChangeImplementationStartedSchema
  | typeof DeploymentPlannedSchema
  | typeof DeploymentApprovalGrantedSchema
  | typeof DeploymentScheduledSchema
  | typeof DeploymentStartedSchema
  | typeof DeploymentStepFailedSchema
  | typeof DeploymentSucceededSchema
  | typeof DeploymentCancelledSchema
  | typeof DeploymentRollbackStartedSchema;

/** Events of one service's streams, about `id` (its id field), in production, at `at`. */
const eventsOf =
  (streams: PublishedStreams, source: string, idField: "deploymentId" | "changeRequestId") =>
  (schema: Schema, id: string, init: object = {}): CloudEvent =>
    streams.event(source, schema, id, { [idField]: id, environment: "production", ...init } as never, {
      occurredAt: timestampFromDate(at),
      time: at,
    });
const event = eventsOf(deployments, "rdm/deployment", "deploymentId");
const changeEvent = eventsOf(changes, "rdm/change", "changeRequestId");

/** Handles the events as one fetch of one partition, in one transaction. */
const fetched = (...events: CloudEvent[]) =>
  withTransaction(pool, (tx) =>
    notifier().handleChunk(
      events.map((e, i) => ({
        event: e,
        info: { topic: "rdm.deployment.events.v1", partition: 0, offset: String(i) },
      })),
      tx,
    ),
  );

const delivered = async (subscriptionId: string) =>
  (
    await pool.query<{ event_id: string }>(
      "SELECT event_id FROM subscription_deliveries WHERE subscription_id = $1 ORDER BY seq",
      [subscriptionId],
    )
  ).rows.map((row) => row.event_id);

const kept = async (deploymentId: string) =>
  (
    await pool.query<{ change_request_ids: string[] }>(
      "SELECT change_request_ids FROM notifier_deployment_changes WHERE deployment_id = $1",
      [deploymentId],
    )
  ).rows[0]?.change_request_ids;

test("in one fetch, a deployment's approval matches by the changes its plan named before it", async () => {
  const change = randomUUID();
  const subscription = await subscribedTo(change);
  const deploymentId = randomUUID();
  const planned = event(DeploymentPlannedSchema, deploymentId, { linkedChangeIds: [change] });
  const approved = event(DeploymentApprovalGrantedSchema, deploymentId, { approver: "anna" });
  const other = event(DeploymentApprovalGrantedSchema, randomUUID(), { approver: "anna" });
  await fetched(planned, approved, other);
  expect(await delivered(subscription)).toEqual([planned.id, approved.id]);
  expect(await kept(deploymentId)).toEqual([change]);
});

test("a deployment's changes only grow across fetches, and a redelivered fetch leaves them as they are", async () => {
  const [linked, checked] = [randomUUID(), randomUUID()].sort();
  const subscription = await subscribedTo(checked as string);
  const deploymentId = randomUUID();
  await fetched(event(DeploymentPlannedSchema, deploymentId, { linkedChangeIds: [linked] }));
  const scheduled = event(DeploymentScheduledSchema, deploymentId, { changeRequestIds: [checked, linked] });
  await fetched(scheduled);
  expect(await kept(deploymentId)).toEqual([linked, checked]);
  await fetched(scheduled);
  expect(await kept(deploymentId)).toEqual([linked, checked]);
  // A later event naming none matches by either.
  const stepFailed = event(DeploymentStepFailedSchema, deploymentId, { stepIndex: 0, reason: "timeout" });
  await fetched(stepFailed);
  expect(await delivered(subscription)).toEqual([scheduled.id, stepFailed.id]);
});

test.each([
  ["in one fetch", true],
  ["across fetches", false],
])(
  "%s, a deployment's begin narrows its changes to those it implements; a redelivered plan adds none back",
  async (_, together) => {
    const [kept_, dropped] = [randomUUID(), randomUUID()];
    const [toKept, toDropped] = [await subscribedTo(kept_), await subscribedTo(dropped)];
    const deploymentId = randomUUID();
    const planned = event(DeploymentPlannedSchema, deploymentId, { linkedChangeIds: [kept_, dropped] });
    const scheduled = event(DeploymentScheduledSchema, deploymentId, { changeRequestIds: [kept_, dropped] });
    // The dropped change was unlinked from the release before the deployment began.
    const begun = event(DeploymentStartedSchema, deploymentId, {
      changeRequestIds: [kept_],
      changeRequestIdsRecorded: true,
    });
    const stepFailed = event(DeploymentStepFailedSchema, deploymentId, { stepIndex: 0, reason: "timeout" });
    if (together) await fetched(planned, scheduled, begun, stepFailed);
    else for (const e of [planned, scheduled, begun, stepFailed]) await fetched(e);
    expect(await kept(deploymentId)).toEqual([kept_]);
    await fetched(planned);
    expect(await kept(deploymentId)).toEqual([kept_]);
    const stepFailedAgain = event(DeploymentStepFailedSchema, deploymentId, { stepIndex: 1, reason: "timeout" });
    await fetched(stepFailedAgain);
    expect(await delivered(toKept)).toEqual([planned.id, scheduled.id, begun.id, stepFailed.id, stepFailedAgain.id]);
    expect(await delivered(toDropped)).toEqual([planned.id, scheduled.id]);
  },
);

test("a plan's targets match the deployment's later events; a plan read after the begin adds them, not its changes", async () => {
  const [host, change, unlinked] = [`ci-${randomUUID()}`, randomUUID(), randomUUID()];
  const toHost = await subscribed({ serviceIds: [host] });
  const deploymentId = randomUUID();
  const steps = [{ index: 0, kind: StepKind.DEPLOY, targetCiIds: [host.toUpperCase()] }];
  const begun = event(DeploymentStartedSchema, deploymentId, {
    changeRequestIds: [change],
    changeRequestIdsRecorded: true,
  });
  // The begin first (a replay, or a begin kept before targets were), then the plan, redelivered.
  await fetched(begun);
  const planned = event(DeploymentPlannedSchema, deploymentId, { linkedChangeIds: [change, unlinked], steps });
  const approved = event(DeploymentApprovalGrantedSchema, deploymentId, { approver: "anna" });
  await fetched(planned, approved);
  const stepFailed = event(DeploymentStepFailedSchema, deploymentId, { stepIndex: 0, reason: "timeout" });
  await fetched(stepFailed);
  expect(await delivered(toHost)).toEqual([planned.id, approved.id, stepFailed.id]);
  const row = await pool.query(
    "SELECT change_request_ids, target_ci_ids FROM notifier_deployment_changes WHERE deployment_id = $1",
    [deploymentId],
  );
  expect(row.rows).toEqual([{ change_request_ids: [change], target_ci_ids: [host.toUpperCase()] }]);
});

test("an outcome recorded before begins named their changes adds to them, as before", async () => {
  const [linked, checked] = [randomUUID(), randomUUID()].sort() as [string, string];
  const toLinked = await subscribedTo(linked);
  const deploymentId = randomUUID();
  const planned = event(DeploymentPlannedSchema, deploymentId, { linkedChangeIds: [linked] });
  // Without change_request_ids_recorded: the start's list, not the changes it implements.
  const succeeded = event(DeploymentSucceededSchema, deploymentId, { changeRequestIds: [checked] });
  await fetched(planned);
  await fetched(succeeded);
  expect(await kept(deploymentId)).toEqual([linked, checked]);
  expect(await delivered(toLinked)).toEqual([planned.id, succeeded.id]);
});

/** The release's index row, linked to these changes (as the release service's projection writes it). */
async function releaseLinkedTo(releaseId: string, linkedChangeRequestIds: string[]) {
  const snapshot = toBinary(ReleaseSchema, create(ReleaseSchema, { releaseId, linkedChangeRequestIds }));
  await pool.query(
    `INSERT INTO release_index (release_id, key, title, type, phase, status, owner, registered_at, snapshot)
     VALUES ($1, 'REL-1', 'r', 0, 0, 0, 'rita', now(), $2)
     ON CONFLICT (release_id) DO UPDATE SET snapshot = EXCLUDED.snapshot`,
    [releaseId, snapshot],
  );
}

test("until its start, a deployment's events match the changes linked to its release; then those the start checked", async () => {
  const [linked, linkedLater] = [randomUUID(), randomUUID()];
  const [toLinked, toLater] = [await subscribedTo(linked), await subscribedTo(linkedLater)];
  const releaseId = randomUUID();
  await releaseLinkedTo(releaseId, [linked]);
  const deploymentId = randomUUID();
  // The plan names no change: its release's link is the one the start's gates will check.
  const planned = event(DeploymentPlannedSchema, deploymentId, { releaseId });
  const approved = event(DeploymentApprovalGrantedSchema, deploymentId, { releaseId, approver: "anna" });
  await fetched(planned);
  await fetched(approved);
  expect(await delivered(toLinked)).toEqual([planned.id, approved.id]);

  // Started with that change; one linked to the release afterwards is not the deployment's.
  const scheduled = event(DeploymentScheduledSchema, deploymentId, { releaseId, changeRequestIds: [linked] });
  await fetched(scheduled);
  await releaseLinkedTo(releaseId, [linked, linkedLater]);
  const stepFailed = event(DeploymentStepFailedSchema, deploymentId, { releaseId, stepIndex: 0, reason: "timeout" });
  await fetched(stepFailed);
  expect(await delivered(toLinked)).toEqual([planned.id, approved.id, scheduled.id, stepFailed.id]);
  expect(await delivered(toLater)).toEqual([]);
});

test("in one fetch, the events before a start match what the start names, not links made since", async () => {
  const [linked, linkedSince] = [randomUUID(), randomUUID()];
  const [toLinked, toSince] = [await subscribedTo(linked), await subscribedTo(linkedSince)];
  const releaseId = randomUUID();
  // The notifier reads the plan after the release linked another change.
  await releaseLinkedTo(releaseId, [linked, linkedSince]);
  const deploymentId = randomUUID();
  const planned = event(DeploymentPlannedSchema, deploymentId, { releaseId });
  const scheduled = event(DeploymentScheduledSchema, deploymentId, { releaseId, changeRequestIds: [linked] });
  const rollingBack = event(DeploymentRollbackStartedSchema, deploymentId, { releaseId, reason: "slow" });
  await fetched(planned, scheduled, rollingBack);
  expect(await delivered(toLinked)).toEqual([planned.id, scheduled.id, rollingBack.id]);
  expect(await delivered(toSince)).toEqual([]);
});

test("a cancellation before the start matches the release's links; one after it, what the start named", async () => {
  const linked = randomUUID();
  const subscription = await subscribedTo(linked);
  const releaseId = randomUUID();
  await releaseLinkedTo(releaseId, [linked]);
  const [early, late] = [randomUUID(), randomUUID()];
  const cancelled = (deploymentId: string) =>
    event(DeploymentCancelledSchema, deploymentId, { releaseId, reason: "no" });
  const [plannedEarly, cancelledEarly] = [event(DeploymentPlannedSchema, early, { releaseId }), cancelled(early)];
  await fetched(plannedEarly, cancelledEarly);
  // Started checking no change: the release's link does not make its cancellation the change's.
  await fetched(event(DeploymentScheduledSchema, late, { releaseId, changeRequestIds: [] }));
  await fetched(cancelled(late));
  expect(await delivered(subscription)).toEqual([plannedEarly.id, cancelledEarly.id]);
});

test("a change's events are titled by the key its raise named, in the same fetch and later", async () => {
  const subscription = await subscribed({ eventTypes: [ChangeImplementationStartedSchema.typeName] });
  const [keyed, unheard] = [randomUUID(), randomUUID()];
  const started = (id: string) => changeEvent(ChangeImplementationStartedSchema, id, { deploymentId: randomUUID() });
  await fetched(changeEvent(ChangeRequestRaisedSchema, keyed, { key: "CHG-2026-0042" }), started(keyed));
  await fetched(started(keyed), started(unheard));
  const { rows } = await pool.query<{ title: string }>(
    "SELECT payload->>'title' AS title FROM subscription_deliveries WHERE subscription_id = $1 ORDER BY seq",
    [subscription],
  );
  expect(rows.map((row) => row.title)).toEqual([
    "Change Implementation Started: CHG-2026-0042 in production",
    "Change Implementation Started: CHG-2026-0042 in production",
    `Change Implementation Started: ${unheard} in production`,
  ]);
});
