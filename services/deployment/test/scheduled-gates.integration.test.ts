// A deployment started for a window ahead: its gates are checked for the time it will begin, and
// again when it begins (its first claim), so a freeze declared meanwhile, the change's window
// over or a release abandoned cancels it instead of letting it run.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentStrategyKind } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  ReleaseChangeRequestLinkedSchema,
  ReleaseChangeRequestUnlinkedSchema,
  ReleasePhaseAdvancedSchema,
  ReleasePhaseReworkedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { artifact, groups, Harness, preconditionRules, rid, strategyOf, uniqueId, waitFor } from "./harness.js";

const harness = new Harness("deployment-scheduled-gates");
type Client = Awaited<ReturnType<Harness["client"]>>;
let deployer: Client;
let executor: Client;

beforeAll(async () => {
  await harness.start("deployment_scheduled_gates");
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
  executor = await harness.client("agent", ["executor"]);
});
afterAll(() => harness.stop());

const inMs = (ms: number) => timestampFromDate(new Date(Date.now() + ms));
const HOUR = 3_600_000;

/**
 * A deployment of a ready release with a verified artifact, and an authorized change scheduled
 * around now that the plan names (unless `withChange` is false: then linked to the release only).
 */
async function planned(window: { startInMs: number; endInMs: number }, withChange = true) {
  const releaseId = randomUUID();
  const environment = uniqueId("env");
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name: environment, promotionRank: 1, targetGroups: groups({ rest: [uniqueId("ci")] }) },
  });
  const artifactId = randomUUID();
  const changeId = randomUUID();
  const releaseChange = await harness.releaseReady(releaseId, { covered: !withChange });
  await harness.artifact(artifactId);
  if (withChange) await Promise.all([harness.change(changeId), harness.linkChange(releaseId, changeId)]);
  const { deployment } = await deployer.planDeployment({
    ...rid(),
    releaseId,
    environment,
    artifacts: [artifact(artifactId)],
    strategy: strategyOf(DeploymentStrategyKind.ALL_AT_ONCE),
    window: create(TimeWindowSchema, { start: inMs(window.startInMs), end: inMs(window.endInMs) }),
    linkedChangeIds: withChange ? [changeId] : [],
  });
  return { environment, releaseId, deploymentId: deployment?.deploymentId as string, releaseChange, changeId };
}

const claim = async (environment: string) =>
  (await executor.claimStep({ ...rid(), executorId: "agent", environments: [environment], leaseSeconds: 30 }))
    .assignment;

test("the start checks the change window and the freezes of the time the deployment will begin", async () => {
  // The change is scheduled from an hour ago to an hour from now; the deployment two to three hours from now.
  const { deploymentId } = await planned({ startInMs: 2 * HOUR, endInMs: 3 * HOUR });
  const freeze = await harness.freezeWindow({ all: true }, { hours: 1 });
  // Polled until every fact has arrived: the release, artifact and change events too.
  const expected = JSON.stringify(["gate.change_window", "gate.freeze_window"]);
  await waitFor(
    async () => {
      const found = await preconditionRules(deployer.startDeployment({ ...rid(), deploymentId }));
      return JSON.stringify(found.sort()) === expected;
    },
    { timeoutMs: 30_000, description: `the refusal naming the change window and the freeze window ${freeze}` },
  );
});

test("a freeze declared after the start cancels the deployment as its window opens: no executor gets a step", async () => {
  const { environment, deploymentId } = await planned({ startInMs: 1_500, endInMs: HOUR });
  const started = await waitFor(() => deployer.startDeployment({ ...rid(), deploymentId }), {
    timeoutMs: 30_000,
    description: "the start once the release, change and artifact are known",
  });
  expect(started.deployment?.state).toBe(DeploymentState.SCHEDULED);
  const freeze = await harness.freezeWindow({ environments: [environment] }, { consumed: true });

  // Executors poll until the deployment is due; none is handed a step of it.
  const assignments: unknown[] = [];
  const after = await claimedUntilDue(environment, deploymentId, assignments);
  expect(assignments).toEqual([]);
  expect(after.state).toBe(DeploymentState.CANCELLED);
  expect(after.reason).toContain(`gate.freeze_window (${freeze})`);
});

test("a change swapped on the release after the start is not the deployment's: it is cancelled as it begins, saying so", async () => {
  const { environment, releaseId, deploymentId, releaseChange } = await planned(
    { startInMs: 1_500, endInMs: HOUR },
    false,
  );
  await startOnceKnown(deploymentId);
  await releaseEvent(ReleaseChangeRequestUnlinkedSchema, releaseId, { releaseId, changeRequestId: releaseChange });
  await harness.coveredByChange(releaseId);
  const after = await claimedUntilDue(environment, deploymentId);
  expect(after.state).toBe(DeploymentState.CANCELLED);
  expect(after.reason).toContain("gate.change_required");
  expect(after.reason).toContain("none of the changes its start checked covers it any more");
});

test("a change its release unlinked between the start and the begin is not the deployment's: it begins without it", async () => {
  const { environment, releaseId, deploymentId, changeId } = await planned({ startInMs: 1_500, endInMs: HOUR });
  const unlinked = randomUUID();
  await harness.handled(await harness.change(unlinked));
  await harness.linkChange(releaseId, unlinked);
  await startOnceKnown(deploymentId);
  expect((await deployer.getDeployment({ deploymentId })).deployment?.changeRequestIds).toContain(unlinked);
  await releaseEvent(ReleaseChangeRequestUnlinkedSchema, releaseId, { releaseId, changeRequestId: unlinked });
  const begun = await claimedUntilDue(environment, deploymentId);
  expect(begun.state).toBe(DeploymentState.IN_PROGRESS);
  expect(begun.changeRequestIds).toContain(changeId);
  expect(begun.changeRequestIds).not.toContain(unlinked);
});

test("what moves on in the usual course does not cancel it: the release past DEPLOYMENT, a change linked since", async () => {
  // Started under the release's change, the plan naming none: a change linked afterwards is not its.
  const { environment, releaseId, deploymentId } = await planned({ startInMs: -1_000, endInMs: HOUR }, false);
  await startOnceKnown(deploymentId);
  // Meanwhile its production deployment succeeded (the release moved on), and a draft change
  // was linked to the release: neither was what this start checked.
  await releaseEvent(ReleasePhaseAdvancedSchema, releaseId, {
    releaseId,
    fromPhase: ReleasePhase.DEPLOYMENT,
    toPhase: ReleasePhase.VERIFICATION,
  });
  await releaseEvent(ReleaseChangeRequestLinkedSchema, releaseId, { releaseId, changeRequestId: randomUUID() });
  const assignment = await claim(environment);
  expect(assignment?.deploymentId).toBe(deploymentId);
  expect((await deployer.getDeployment({ deploymentId })).deployment?.state).toBe(DeploymentState.IN_PROGRESS);
});

test("a release sent back for rework before the deployment begins cancels it", async () => {
  const { environment, releaseId, deploymentId } = await planned({ startInMs: -1_000, endInMs: HOUR });
  await startOnceKnown(deploymentId);
  await releaseEvent(ReleasePhaseReworkedSchema, releaseId, {
    releaseId,
    fromPhase: ReleasePhase.DEPLOYMENT,
    toPhase: ReleasePhase.BUILD_AND_TEST,
    reason: "the package failed its load test",
  });
  expect(await claim(environment)).toBeUndefined();
  const { deployment } = await deployer.getDeployment({ deploymentId });
  expect(deployment?.state).toBe(DeploymentState.CANCELLED);
  expect(deployment?.reason).toContain("gate.release_phase");
});

test("a deployment whose window ends before any executor came is cancelled by the service and holds its environment no more", async () => {
  const { environment, deploymentId } = await planned({ startInMs: -1_000, endInMs: 10_000 });
  await startOnceKnown(deploymentId);
  // No executor ever claims in the environment: the service's sweep cancels it once the window ends.
  const cancelled = await waitFor(
    async () => {
      const { deployment } = await deployer.getDeployment({ deploymentId });
      return deployment?.state === DeploymentState.CANCELLED ? deployment : undefined;
    },
    { timeoutMs: 30_000, description: "the deployment cancelled once its window ended" },
  );
  expect(cancelled.reason).toContain("deployment.window_passed");
  expect(await claim(environment)).toBeUndefined();
});

/**
 * An executor claims in the environment until the deployment is due (no longer SCHEDULED: begun
 * or cancelled as it begins); the deployment then, and every assignment handed out meanwhile.
 */
async function claimedUntilDue(environment: string, deploymentId: string, assignments: unknown[] = []) {
  return waitFor(
    async () => {
      const assignment = await claim(environment);
      if (assignment) assignments.push(assignment);
      const { deployment } = await deployer.getDeployment({ deploymentId });
      return deployment?.state === DeploymentState.SCHEDULED ? undefined : deployment;
    },
    { timeoutMs: 30_000, description: "the deployment due" },
  );
}

async function startOnceKnown(deploymentId: string) {
  await waitFor(() => deployer.startDeployment({ ...rid(), deploymentId }), {
    timeoutMs: 30_000,
    description: "the start once the release, change and artifact are known",
  });
}

/** A release event, published as the release service would and handled by the deployment service. */
async function releaseEvent<S extends Parameters<Harness["publish"]>[1]>(
  schema: S,
  releaseId: string,
  init: Parameters<Harness["publish"]>[3],
) {
  await harness.handled(await harness.publish("release", schema, releaseId, init as never));
}
