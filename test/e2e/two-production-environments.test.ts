// A change naming two production environments (prod-eu, prod-us), end to end through the release,
// change, configuration and deployment services' gRPC APIs, the reference executor and Kafka: the
// release's package succeeds in prod-eu; the change stays IMPLEMENTING with prod-eu done and the
// release stays in its deployment phase, so prod-us may still start; its success implements the
// change and moves the release on.
import { randomUUID } from "node:crypto";
import type { Role } from "@rdm/auth";
import { createGrpcClient } from "@rdm/grpc";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { DeploymentStrategyKind } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { uniqueId, waitFor } from "@rdm/testkit";
import { authorizedChange, e2eStack, type StartedService, verifiedArtifact } from "./harness.js";

const stack = e2eStack("e2e-two-production");
let release: StartedService;
let change: StartedService;
let configuration: StartedService;
let deployment: StartedService;
const rid = () => ({ requestId: randomUUID() });
const WAIT = { timeoutMs: 60_000 };
const HOUR = 3_600_000;
const ts = (ms: number) => ({ seconds: BigInt(Math.floor(ms / 1000)), nanos: 0 });
const window = { start: ts(Date.now() - HOUR), end: ts(Date.now() + 4 * HOUR) };

beforeAll(async () => {
  [release, change, configuration, deployment] = await Promise.all([
    stack.release(),
    stack.change(),
    stack.configuration(),
    stack.deployment(),
  ]);
}, 120_000);

afterAll(() => stack.stop());

/** One actor's clients of the four services. */
async function actor(subject: string, roles: Role[], groups: string[] = []) {
  const options = { token: await stack.token(subject, roles, groups) };
  return {
    release: createGrpcClient(ReleaseService, release.address, options),
    change: createGrpcClient(ChangeService, change.address, options),
    configuration: createGrpcClient(ConfigurationService, configuration.address, options),
    deployment: createGrpcClient(DeploymentService, deployment.address, options),
  };
}

test("a change for prod-eu and prod-us: the release keeps deploying after prod-eu; prod-us implements the change", async () => {
  const rita = await actor("rita", ["release-manager", "deployer"]);
  const chris = await actor("chris", ["change-manager"]);
  const ann = await actor("ann", ["approver"], ["cab"]);
  const cora = await actor("cora", ["config-manager"]);
  const [eu, us] = [uniqueId("prod-eu"), uniqueId("prod-us")];
  const host = async (name: string) =>
    (await cora.configuration.registerConfigurationItem({ ...rid(), name, type: CiType.HOST, owner: "team-checkout" }))
      .item?.ciId as string;
  const hosts = { [eu]: await host(uniqueId("checkout-eu")), [us]: await host(uniqueId("checkout-us")) };
  for (const name of [eu, us]) {
    await rita.deployment.registerEnvironment({
      ...rid(),
      environment: {
        name,
        promotionRank: 4,
        production: true,
        targetGroups: [{ name: "rest", ciIds: [hosts[name] as string] }],
      },
    });
  }
  await stack.executor(deployment, { environments: [eu, us], command: "true", poll: true });
  const pkg = await verifiedArtifact(cora.configuration, uniqueId("checkout"), "7.4.0");

  // A release model straight from registration to deployment (the flow is about what follows).
  const modelName = uniqueId("two-prod");
  const phases = [
    ReleasePhase.REGISTRATION,
    ReleasePhase.DEPLOYMENT,
    ReleasePhase.VERIFICATION,
    ReleasePhase.REVIEW,
    ReleasePhase.CLOSED,
  ];
  await rita.release.createReleaseModel({
    ...rid(),
    model: { name: modelName, phases: phases.map((phase) => ({ phase })) },
  });
  const registered = await rita.release.registerRelease({
    ...rid(),
    title: "Checkout 7.4 in two regions",
    type: ReleaseType.MINOR,
    owner: "olivia",
    modelName,
  });
  const releaseId = registered.release?.releaseId as string;

  // The change: both regions, authorized by one CAB member, scheduled around now, linked.
  const changeRequestId = await authorizedChange(
    chris,
    [ann],
    {
      title: "Checkout 7.4 in both regions",
      justification: "new checkout flow",
      affectedCiIds: Object.values(hosts),
      environments: [eu, us],
      implementationPlan: "prod-eu, then prod-us",
      backoutPlan: "roll back to the last known good baseline",
    },
    window,
  );
  await rita.release.linkChangeRequest({ ...rid(), releaseId, changeRequestId });
  expect((await rita.release.advanceReleasePhase({ ...rid(), releaseId })).release?.phase).toBe(
    ReleasePhase.DEPLOYMENT,
  );

  const deployTo = async (environment: string) => {
    const { deployment: planned } = await rita.deployment.planDeployment({
      ...rid(),
      releaseId,
      environment,
      artifacts: [pkg],
      strategy: { kind: DeploymentStrategyKind.ALL_AT_ONCE },
      window,
      linkedChangeIds: [changeRequestId],
    });
    const deploymentId = planned?.deploymentId as string;
    await waitFor(() => rita.deployment.startDeployment({ ...rid(), deploymentId }), {
      ...WAIT,
      description: `the gates of ${environment} met once the upstream facts are consumed`,
    });
    await waitFor(
      async () =>
        (await rita.deployment.getDeployment({ deploymentId })).deployment?.state === DeploymentState.SUCCEEDED,
      { ...WAIT, description: `the deployment to ${environment} succeeded` },
    );
    return deploymentId;
  };
  const changeNow = async () => (await chris.change.getChange({ changeRequestId })).change;
  const releaseNow = async () => (await rita.release.getRelease({ releaseId })).release;

  await deployTo(eu);
  const halfway = await waitFor(
    async () => {
      const found = await changeNow();
      return found?.implementedEnvironments.includes(eu) ? found : undefined;
    },
    { ...WAIT, description: `the change implemented in ${eu}` },
  );
  expect(halfway.state).toBe(ChangeState.IMPLEMENTING);
  await waitFor(async () => (await releaseNow())?.deployments.length === 1, {
    ...WAIT,
    description: `the release's success in ${eu} recorded`,
  });
  expect((await releaseNow())?.phase).toBe(ReleasePhase.DEPLOYMENT);

  // prod-us may still start: the release is deploying, the change covers it.
  const last = await deployTo(us);
  const done = await waitFor(
    async () => {
      const found = await changeNow();
      return found?.state === ChangeState.IMPLEMENTED ? found : undefined;
    },
    { ...WAIT, description: "the change implemented" },
  );
  expect(done.implementedByDeploymentId).toBe(last);
  await waitFor(async () => (await releaseNow())?.phase === ReleasePhase.VERIFICATION, {
    ...WAIT,
    description: "the release in VERIFICATION",
  });
}, 240_000);
