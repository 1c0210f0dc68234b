// One system, end to end through public interfaces only (gRPC, the reference executor, Kafka):
// artifacts in the DML and CIs in the CMDB, a change authorized by the CAB, a release walked
// through its approvals and deployed to test, then to production with a canary, verified,
// reviewed and closed. Then a second release whose production verification fails: the deployment
// rolls back automatically to the previous baseline, the release records the deviation and tells
// its owner and coordinator, the change fails. Every hop is checked on the topics too. After
// every command the gateway's release overview equals what the services answer; at each
// milestone its calendar, inventory, KPIs (exact figures) and audit trail are checked. The
// release service's process is killed (SIGKILL) as it consumes the failure: every effect once.
// At the end the views rebuilt from the topics equal the live ones, and a replay changes nothing.
import { randomUUID } from "node:crypto";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentStrategyKind } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  DeploymentOutcome,
  LogEntryKind,
  ReleasePhase,
  ReleaseStatus,
  ReviewOutcome,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { waitFor } from "@rdm/testkit";
import {
  entries,
  expectAuditFilters,
  expectCalendar,
  expectInventory,
  expectKpis,
  type Made,
  range,
} from "./release-to-production.milestones.js";
import { expectEachEffectOnce } from "./release-to-production.once.js";
import {
  type Actors,
  actorsOf,
  advance,
  artifactInDml,
  baselineOf,
  CANARY,
  cmdbAndEnvironments,
  deploy,
  getRelease,
  releaseInDeployment,
  useFlow,
  WAIT,
} from "./release-to-production.steps.js";
import { type Published, type RunningSystem, startSystem } from "./release-to-production.system.js";
import {
  eventually,
  expectAuditOfEverything,
  expectEnvironments,
  expectOverview,
  viewOf,
  viewsNow,
} from "./release-to-production.views.js";

let system: RunningSystem;
let actors: Actors;
let releaseDown = false;
const rid = () => ({ requestId: randomUUID() });

beforeAll(async () => {
  system = await startSystem("e2e_flow");
  actors = await actorsOf(system);
  // After every command on a release, its overview in the gateway equals what the services say
  // (not while the release service is down: it is the one to ask).
  useFlow(system, actors, async (releaseId) => {
    if (!releaseDown) await expectOverview(system, actors, releaseId);
  });
}, 180_000);

afterAll(() => system?.stop());

type Landscape = Awaited<ReturnType<typeof cmdbAndEnvironments>>;

/** Release 1: to test, then to production with a canary, verified, reviewed, closed. */
async function firstReleaseClosed({ service, prodA, prodB }: Landscape): Promise<Made> {
  const { carl, chris, rita } = actors;
  const v1 = await artifactInDml("1.0.0");
  const first = await releaseInDeployment(service, v1);
  const inTest = await deploy(first.releaseId, first.changeId, "test", v1, {
    kind: DeploymentStrategyKind.ALL_AT_ONCE,
  });
  expect(inTest.state).toBe(DeploymentState.SUCCEEDED);
  expect((await getRelease(first.releaseId)).phase).toBe(ReleasePhase.DEPLOYMENT);
  const inProduction = await deploy(first.releaseId, first.changeId, "production", v1, CANARY);
  expect([inProduction.state, inProduction.promoted]).toEqual([DeploymentState.SUCCEEDED, [0]]);

  await waitFor(async () => (await getRelease(first.releaseId)).phase === ReleasePhase.VERIFICATION, {
    ...WAIT,
    description: "release 1 in VERIFICATION after the production success",
  });
  await waitFor(
    async () =>
      (await chris.change.getChange({ changeRequestId: first.changeId })).change?.state === ChangeState.IMPLEMENTED,
    { ...WAIT, description: "change 1 implemented" },
  );
  // By the production deployment, as the change service and the gateway say.
  const implemented = (await chris.change.getChange({ changeRequestId: first.changeId })).change;
  expect(implemented?.implementedByDeploymentId).toBe(inProduction.deploymentId);
  await eventually("the gateway's change 1 implemented", async () => {
    const view = await viewOf(system, `/v1/changes/${first.changeId}`);
    expect([view.state, view.implementedByDeploymentId]).toEqual(["IMPLEMENTED", inProduction.deploymentId]);
  });
  await waitFor(async () => (await baselineOf("production"))?.length === 2, { ...WAIT, description: "baseline" });
  expect(await baselineOf("production")).toEqual(
    [
      [prodA, "1.0.0"],
      [prodB, "1.0.0"],
    ].sort(),
  );
  await advance(first.releaseId, ReleasePhase.REVIEW);
  await carl.release.recordPostImplementationReview({
    ...rid(),
    releaseId: first.releaseId,
    outcome: ReviewOutcome.SUCCESSFUL,
    lessonsLearned: "the canary caught nothing to catch",
  });
  const closed = (await rita.release.closeRelease({ ...rid(), releaseId: first.releaseId })).release;
  expect([closed?.status, closed?.phase]).toEqual([ReleaseStatus.CLOSED, ReleasePhase.CLOSED]);
  expect(closed?.deployments.map((d) => [d.environment, d.outcome, d.production])).toEqual([
    ["test", DeploymentOutcome.SUCCEEDED, false],
    ["production", DeploymentOutcome.SUCCEEDED, true],
  ]);
  expect(closed?.log).toEqual([]);
  await expectOverview(system, actors, first.releaseId);
  return { ...first, test: inTest.deploymentId, production: inProduction.deploymentId, artifactId: v1.artifactId };
}

/** Release 2: its production verification fails; the deployment rolls back to release 1's baseline. */
async function secondReleaseBackedOut({ service, prodA, prodB }: Landscape): Promise<Made> {
  const { chris, cora, rita } = actors;
  const v2 = await artifactInDml("1.1.0");
  const second = await releaseInDeployment(service, v2);
  const secondInTest = await deploy(second.releaseId, second.changeId, "test", v2, {
    kind: DeploymentStrategyKind.ALL_AT_ONCE,
  });
  expect(secondInTest.state).toBe(DeploymentState.SUCCEEDED);
  // The release service's process is killed (SIGKILL) as its consumer reads the failure: once
  // restarted, it reacts to what it missed or had not committed, each outcome once.
  const killed = system.killReleaseWhen((e) => e.type === "rdm.deployment.v1.DeploymentFailed");
  releaseDown = true;
  const failed = await deploy(second.releaseId, second.changeId, "production", v2, CANARY);
  expect(failed.state).toBe(DeploymentState.ROLLED_BACK);
  await killed;
  await system.restartRelease();
  releaseDown = false;

  const deviations = await waitFor(
    async () => {
      const release = await getRelease(second.releaseId);
      return release.log.length === 2 ? release : undefined;
    },
    { ...WAIT, description: "release 2's deviations" },
  );
  expect(deviations.phase).toBe(ReleasePhase.DEPLOYMENT);
  expect(deviations.log.map((entry) => [entry.kind, entry.text.replace(/:.*/, "")])).toEqual([
    [LogEntryKind.DEVIATION, `deployment ${failed.deploymentId} to production (production) failed`],
    [LogEntryKind.DEVIATION, `deployment ${failed.deploymentId} to production (production) was rolled back`],
  ]);
  const { deliveries } = await rita.release.listNotificationDeliveries({ releaseId: second.releaseId });
  expect(
    deliveries.filter((d) => d.trigger === "rdm.release.v1.ReleaseDeviationRecorded").map((d) => d.recipients),
  ).toEqual([
    ["olivia", "carl"],
    ["olivia", "carl"],
  ]);
  await waitFor(
    async () =>
      (await chris.change.getChange({ changeRequestId: second.changeId })).change?.state === ChangeState.FAILED,
    { ...WAIT, description: "change 2 failed" },
  );
  await waitFor(
    async () =>
      (await cora.configuration.getBaseline({ environment: "production" })).baseline?.lastDeploymentId ===
      failed.deploymentId,
    { ...WAIT, description: "the rollback in the baseline" },
  );
  expect(await baselineOf("production")).toEqual(
    [
      [prodA, "1.0.0"],
      [prodB, "1.0.0"],
    ].sort(),
  );
  await expectOverview(system, actors, second.releaseId);
  return { ...second, test: secondInTest.deploymentId, production: failed.deploymentId, artifactId: v2.artifactId };
}

/** The combined views once release 1 is closed: 1.0.0 on both production hosts by its canary. */
async function viewsAfterFirst({ testHost, prodA, prodB }: Landscape, first: Made) {
  const v1 = { by: first, artifactId: first.artifactId };
  await expectInventory(system, [
    {
      environment: "test",
      lastOutcome: "SUCCEEDED",
      lastDeploymentId: first.test,
      entries: await entries(system, "test", "1.0.0", { ...v1, outcome: "SUCCEEDED" }, [testHost]),
    },
    {
      environment: "production",
      lastOutcome: "SUCCEEDED",
      lastDeploymentId: first.production,
      entries: await entries(system, "production", "1.0.0", { ...v1, outcome: "SUCCEEDED" }, [prodA, prodB].sort()),
    },
  ]);
  // A closed release no longer occupies the calendar; its change and deployment do.
  await expectCalendar(system, {
    releases: [],
    changes: [[first.changeId, "IMPLEMENTED"]],
    deployments: [[first.production, "SUCCEEDED"]],
    conflicts: [],
  });
  await expectKpis(system, [first], undefined);
  await expectAuditFilters(system, first);
}

/**
 * The combined views once release 2 is backed out: the rollback restored 1.0.0 on both hosts
 * (both ran 1.1.0 when verification failed), so both entries are the rollback's, since then.
 */
async function viewsAfterSecond({ testHost, prodA, prodB }: Landscape, first: Made, second: Made) {
  await expectInventory(system, [
    {
      environment: "test",
      lastOutcome: "SUCCEEDED",
      lastDeploymentId: second.test,
      entries: await entries(
        system,
        "test",
        "1.1.0",
        { by: second, artifactId: second.artifactId, outcome: "SUCCEEDED" },
        [testHost],
      ),
    },
    {
      environment: "production",
      lastOutcome: "ROLLED_BACK",
      lastDeploymentId: second.production,
      entries: await entries(
        system,
        "production",
        "1.0.0",
        { by: second, artifactId: first.artifactId, outcome: "ROLLED_BACK" },
        [prodA, prodB].sort(),
      ),
    },
  ]);
  // Both production deployments were planned in the same window: two deployments at once.
  await expectCalendar(system, {
    releases: [second.releaseId],
    changes: [
      [first.changeId, "IMPLEMENTED"],
      [second.changeId, "FAILED"],
    ],
    deployments: [
      [first.production, "SUCCEEDED"],
      [second.production, "ROLLED_BACK"],
    ],
    conflicts: [{ kind: "DEPLOYMENT_DEPLOYMENT", ids: [first.production, second.production], ciIds: [prodA, prodB] }],
  });
  await expectKpis(system, [first], second);
  await expectAuditFilters(system, second);
}

test("a release from the DML to production and closed; the next one fails verification and is backed out", async () => {
  const landscape = await cmdbAndEnvironments();
  await expectEnvironments(system, actors);
  const first = await firstReleaseClosed(landscape);
  await viewsAfterFirst(landscape, first);
  const second = await secondReleaseBackedOut(landscape);
  await viewsAfterSecond(landscape, first, second);
  await expectEachEffectOnce(system, actors, first, second);

  // The hops on the topics: each reaction caused by the upstream event it answers. The relays
  // publish after the commits the gRPC reads saw, so the reader is polled until it has them all.
  await waitFor(
    () => {
      expectHopsOnTopics(system.published(), first, second, second.production);
      return true;
    },
    { ...WAIT, description: "every hop on the topics" },
  );
  await expectAuditOfEverything(system);

  // The views rebuilt from the topics by the rebuild command equal the live ones.
  const releases = [first.releaseId, second.releaseId];
  const live = await viewsNow(system, releases, range);
  await system.rebuildViews();
  expect(await viewsNow(system, releases, range)).toEqual(live);

  // Every topic read again from the start by new consumer groups of every service: nothing changes.
  const versions = await system.streamVersions();
  await system.replay();
  expect(await system.streamVersions()).toEqual(versions);
}, 300_000);

function expectHopsOnTopics(
  published: Published[],
  first: { releaseId: string; changeId: string },
  second: { releaseId: string; changeId: string },
  failedDeploymentId: string,
) {
  // A redelivery (the relay killed after sending, before recording it) is the same event.
  const unique = [...new Map(published.map((e) => [e.id, e])).values()];
  const on = (source: string, subject: string) => unique.filter((e) => e.source === source && e.subject === subject);
  const named = (events: Published[], prefix: string) => events.map((e) => e.type.replace(prefix, ""));
  const deploymentEvents = on("deployment", failedDeploymentId);
  const upstream = (type: string) => deploymentEvents.find((e) => e.type === `rdm.deployment.v1.${type}`)?.id;
  const causedBy = (events: Published[], type: string) =>
    events.filter((e) => e.type.endsWith(type)).map((e) => e.causationId);
  const lifecycle = ["DeploymentStarted", "DeploymentFailed", "DeploymentRollbackStarted", "DeploymentRolledBack"];
  expect(named(deploymentEvents, "rdm.deployment.v1.").filter((t) => lifecycle.includes(t))).toEqual(lifecycle);
  expect(causedBy(on("release", second.releaseId), "ReleaseDeviationRecorded")).toEqual([
    upstream("DeploymentFailed"),
    upstream("DeploymentRolledBack"),
  ]);
  expect(causedBy(on("change", second.changeId), "ChangeImplementationStarted")).toEqual([
    upstream("DeploymentStarted"),
  ]);
  expect(causedBy(on("change", second.changeId), "ChangeRequestFailed")).toEqual([upstream("DeploymentFailed")]);
  expect(causedBy(on("change", first.changeId), "ChangeRequestImplemented")).toHaveLength(1);
  expect(causedBy(on("configuration", "baseline-production"), "BaselineDeploymentRecorded")).toEqual(
    expect.arrayContaining([upstream("DeploymentRolledBack")]),
  );
  const firstRelease = named(on("release", first.releaseId), "rdm.release.v1.");
  expect(firstRelease.filter((t) => t === "ReleaseDeploymentRecorded" || t === "ReleaseClosed")).toEqual([
    "ReleaseDeploymentRecorded",
    "ReleaseDeploymentRecorded",
    "ReleaseClosed",
  ]);
}
