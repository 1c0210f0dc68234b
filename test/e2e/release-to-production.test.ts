// One system, end to end through public interfaces only (gRPC, the reference executor, Kafka):
// artifacts in the DML and CIs in the CMDB, a change authorized by the CAB, a release walked
// through its approvals and deployed to test, then to production with a canary, verified,
// reviewed and closed. Then a second release whose production verification fails: the deployment
// rolls back automatically to the previous baseline, the release records the deviation and tells
// its owner and coordinator, the change fails. Every hop is checked on the topics too.
import { createHash, randomUUID } from "node:crypto";
import { ChangeImpact, ChangeState, ChangeType, ChangeUrgency } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentStrategyKind } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  DeploymentOutcome,
  LogEntryKind,
  type Release,
  ReleasePhase,
  ReleaseStatus,
  ReleaseType,
  ReviewOutcome,
  RiskLevel,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { waitFor } from "@rdm/testkit";
import { type Clients, type Published, type RunningSystem, startSystem } from "./release-to-production.system.js";

let system: RunningSystem;
let rita: Clients; // release manager; owns the environments
let carl: Clients; // release coordinator
let chris: Clients; // change manager
let ann: Clients; // on the CAB (release and change)
let ben: Clients;
let dana: Clients; // deployer
let cora: Clients; // configuration manager
const rid = () => ({ requestId: randomUUID() });
const WAIT = { timeoutMs: 60_000 };

beforeAll(async () => {
  system = await startSystem("e2e_flow");
  rita = await system.clients("rita", ["release-manager"]);
  carl = await system.clients("carl", ["release-coordinator"]);
  chris = await system.clients("chris", ["change-manager"]);
  ann = await system.clients("ann", ["approver"], ["cab"]);
  ben = await system.clients("ben", ["approver"], ["cab"]);
  dana = await system.clients("dana", ["deployer"]);
  cora = await system.clients("cora", ["config-manager"]);
}, 180_000);

afterAll(() => system?.stop());

const ci = async (name: string, type: CiType) =>
  (await cora.configuration.registerConfigurationItem({ ...rid(), name, type, owner: "team-checkout" })).item
    ?.ciId as string;

/** An artifact registered in the DML and verified against its checksum. */
async function artifactInDml(version: string) {
  const sha256 = createHash("sha256").update(`checkout ${version}`).digest("hex");
  const { artifact } = await cora.configuration.registerArtifact({
    ...rid(),
    name: "checkout",
    version,
    sha256,
    sizeBytes: 1024n,
    mediaUri: `s3://dml/checkout-${version}.tgz`,
  });
  const artifactId = artifact?.artifactId as string;
  await cora.configuration.verifyArtifact({ ...rid(), artifactId, sha256 });
  return { artifactId, name: "checkout", version, sha256 };
}

async function getRelease(releaseId: string): Promise<Release> {
  return (await rita.release.getRelease({ releaseId })).release as Release;
}

async function completeTasks(releaseId: string) {
  const release = await getRelease(releaseId);
  for (const task of release.tasks) {
    const current = task.phase === release.phase && task.phaseEntry === release.phaseEntry;
    if (current && task.required && task.status !== TaskStatus.DONE)
      await carl.release.completeReleaseTask({ ...rid(), releaseId, taskId: task.taskId });
  }
}

async function advance(releaseId: string, to: ReleasePhase) {
  await completeTasks(releaseId);
  const { release } = await carl.release.advanceReleasePhase({ ...rid(), releaseId });
  expect(release?.phase).toBe(to);
}

/** A normal change on the service's CI in production, authorized by the CAB and scheduled around now. */
async function authorizedChange(serviceCi: string, version: string) {
  const { change } = await chris.change.raiseChange({
    ...rid(),
    type: ChangeType.NORMAL,
    title: `Checkout ${version}`,
    justification: "new checkout flow",
    affectedCiIds: [serviceCi],
    environments: ["production"],
    implementationPlan: "canary in production",
    backoutPlan: "roll back to the last known good baseline",
  });
  const changeRequestId = change?.changeRequestId as string;
  await chris.change.submitChange({ ...rid(), changeRequestId });
  await chris.change.assessChange({
    ...rid(),
    changeRequestId,
    impact: ChangeImpact.MEDIUM,
    urgency: ChangeUrgency.MEDIUM,
    requiredApprovals: 2,
  });
  await ann.change.approveChange({ ...rid(), changeRequestId, comment: "ok" });
  await ben.change.approveChange({ ...rid(), changeRequestId, comment: "ok" });
  const now = Date.now();
  await chris.change.scheduleChange({
    ...rid(),
    changeRequestId,
    window: { start: ts(new Date(now - 3_600_000)), end: ts(new Date(now + 4 * 3_600_000)) },
  });
  return changeRequestId;
}

const ts = (d: Date) => ({ seconds: BigInt(Math.floor(d.getTime() / 1000)), nanos: 0 });

/** A release with its change and package, walked through the CAB to its deployment phase. */
async function releaseInDeployment(serviceCi: string, pkg: Awaited<ReturnType<typeof artifactInDml>>) {
  const { release } = await rita.release.registerRelease({
    ...rid(),
    title: `Checkout ${pkg.version}`,
    description: "checkout release",
    type: ReleaseType.MINOR,
    category: "checkout",
    owner: "olivia",
    coordinator: "carl",
    stakeholders: ["sre-checkout"],
    risk: RiskLevel.MEDIUM,
  });
  const releaseId = release?.releaseId as string;
  const changeId = await authorizedChange(serviceCi, pkg.version);
  await carl.release.linkChangeRequest({ ...rid(), releaseId, changeRequestId: changeId });
  await advance(releaseId, ReleasePhase.ASSESSMENT);
  await advance(releaseId, ReleasePhase.PLANNING);
  await advance(releaseId, ReleasePhase.APPROVAL);
  const requested = await carl.release.requestReleaseApproval({ ...rid(), releaseId, approverGroup: "cab" });
  const approvalId = requested.release?.approvals.at(-1)?.approvalId as string;
  await ann.release.approveRelease({ ...rid(), releaseId, approvalId, comment: "ok" });
  await ben.release.approveRelease({ ...rid(), releaseId, approvalId, comment: "ok" });
  // The release learns of the change's authorization from the change topic.
  await waitFor(async () => (await rita.release.getReleaseGate({ releaseId })).open, {
    ...WAIT,
    description: "the release's approval gate open",
  });
  await advance(releaseId, ReleasePhase.BUILD_AND_TEST);
  await carl.release.attachReleaseArtifact({ ...rid(), releaseId, ...pkg, configurationItemId: serviceCi });
  await advance(releaseId, ReleasePhase.DEPLOYMENT);
  return { releaseId, changeId };
}

const CANARY = {
  kind: DeploymentStrategyKind.CANARY,
  canaryStages: [{ weightPercent: 50, manualPromotion: true }, { weightPercent: 100 }],
};
const TERMINAL = [DeploymentState.SUCCEEDED, DeploymentState.ROLLED_BACK, DeploymentState.FAILED];

/** Plans and starts a deployment (its gates pass once the upstream facts arrived), runs it to its end. */
async function deploy(
  releaseId: string,
  changeId: string,
  environment: string,
  pkg: Awaited<ReturnType<typeof artifactInDml>>,
  strategy: object,
) {
  const { deployment } = await dana.deployment.planDeployment({
    ...rid(),
    releaseId,
    environment,
    artifacts: [{ artifactId: pkg.artifactId, name: pkg.name, version: pkg.version }],
    strategy,
    linkedChangeIds: [changeId],
  });
  const deploymentId = deployment?.deploymentId as string;
  await waitFor(() => dana.deployment.startDeployment({ ...rid(), deploymentId }), {
    ...WAIT,
    description: `the gates of ${environment}`,
  });
  const promoted: number[] = [];
  const ended = await waitFor(
    async () => {
      await system.executor.runOnce();
      const current = (await dana.deployment.getDeployment({ deploymentId })).deployment;
      if (current?.awaitingPromotion) {
        promoted.push(current.steps.findIndex((s) => s.promotionAfter));
        await rita.deployment.promoteDeployment({ ...rid(), deploymentId, comment: "canary healthy" });
      }
      return current && TERMINAL.includes(current.state) ? current : undefined;
    },
    { ...WAIT, description: `deployment to ${environment} ended` },
  );
  return { deploymentId, state: ended.state, promoted };
}

const baselineOf = async (environment: string) =>
  (await cora.configuration.getBaseline({ environment })).baseline?.entries.map((e) => [e.ciId, e.artifactVersion]);

/** The CMDB items of the checkout service and its hosts, and the environments test and production. */
async function cmdbAndEnvironments() {
  const service = await ci("checkout", CiType.SERVICE);
  const testHost = await ci("checkout-test-1", CiType.HOST);
  const [prodA, prodB] = [await ci("checkout-prod-a", CiType.HOST), await ci("checkout-prod-b", CiType.HOST)];
  await rita.deployment.registerEnvironment({
    ...rid(),
    environment: { name: "test", promotionRank: 2, targetGroups: [{ name: "rest", ciIds: [testHost] }] },
  });
  await rita.deployment.registerEnvironment({
    ...rid(),
    environment: {
      name: "production",
      promotionRank: 4,
      promotesFrom: "test",
      targetGroups: [{ name: "rest", ciIds: [prodA, prodB] }],
    },
  });
  return { service, prodA, prodB };
}

/** Release 1: to test, then to production with a canary, verified, reviewed, closed. */
async function firstReleaseClosed({ service, prodA, prodB }: Awaited<ReturnType<typeof cmdbAndEnvironments>>) {
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
  return first;
}

/** Release 2: its production verification fails; the deployment rolls back to release 1's baseline. */
async function secondReleaseBackedOut({ service, prodA, prodB }: Awaited<ReturnType<typeof cmdbAndEnvironments>>) {
  const v2 = await artifactInDml("1.1.0");
  const second = await releaseInDeployment(service, v2);
  const secondInTest = await deploy(second.releaseId, second.changeId, "test", v2, {
    kind: DeploymentStrategyKind.ALL_AT_ONCE,
  });
  expect(secondInTest.state).toBe(DeploymentState.SUCCEEDED);
  // The release service is down while the deployment fails and rolls back: once restarted, it
  // reacts to what it missed, each outcome once.
  const releaseService = await system.stopService("release");
  const failed = await deploy(second.releaseId, second.changeId, "production", v2, CANARY);
  expect(failed.state).toBe(DeploymentState.ROLLED_BACK);
  await releaseService.restart();

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
  return { second, failed };
}

test("a release from the DML to production and closed; the next one fails verification and is backed out", async () => {
  const landscape = await cmdbAndEnvironments();
  const first = await firstReleaseClosed(landscape);
  const { second, failed } = await secondReleaseBackedOut(landscape);

  // The hops on the topics: each reaction caused by the upstream event it answers. The relays
  // publish after the commits the gRPC reads saw, so the reader is polled until it has them all.
  await waitFor(
    () => {
      expectHopsOnTopics(system.published(), first, second, failed.deploymentId);
      return true;
    },
    { ...WAIT, description: "every hop on the topics" },
  );

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
  const on = (source: string, subject: string) => published.filter((e) => e.source === source && e.subject === subject);
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
