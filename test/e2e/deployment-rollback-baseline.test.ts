// The deployment and configuration services together, on real PostgreSQL and the Kafka protocol:
// artifacts registered and verified in the DML reach the deployment gates; the reference executor
// deploys a first release; a second one adding an artifact fails its verification, rolls back by
// itself, and the configuration service's baseline of the environment is the first one again,
// exactly: what the failed deployment added is gone. Checked through GetBaseline. An SRE's
// subscription to the environment's critical events (the release service's notifier) records the
// failure, the rollback's start and its end, and nothing of the environment's other events.
// Blue-green: each colour runs the version last deployed to it, in the configuration baseline,
// the deployment service's environment and the gateway's inventory, which names the live colour.
// A package of one artifact leaves the others running, and so does its back-out after another
// artifact was deployed.
import { randomUUID } from "node:crypto";
import { createGrpcClient, type GrpcClient } from "@rdm/grpc";
import { EnvironmentHealth } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import {
  DeploymentFailedSchema,
  DeploymentRollbackStartedSchema,
  DeploymentRolledBackSchema,
  DeploymentStrategyKind,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { NotificationService } from "@rdm/proto/gen/rdm/notification/v1/notification_service_pb.js";
import { Severity } from "@rdm/proto/gen/rdm/notification/v1/subscription_pb.js";
import { uniqueId, waitFor } from "@rdm/testkit";
import {
  e2eStack,
  publishReleaseInDeployment,
  type StartedGateway,
  type StartedService,
  verifiedArtifact,
} from "./harness.js";

const stack = e2eStack("e2e-rollback-baseline");
let producer: Awaited<ReturnType<typeof stack.producer>>;
let configurationService: StartedService;
let deploymentService: StartedService;
let releaseService: StartedService;
let gateway: StartedGateway;

beforeAll(async () => {
  [configurationService, deploymentService, releaseService, gateway, producer] = await Promise.all([
    stack.configuration(),
    stack.deployment(),
    stack.release(),
    stack.gateway(),
    stack.producer(),
  ]);
});

type Deployer = GrpcClient<(typeof DeploymentService)["method"]>;
type Dml = GrpcClient<(typeof ConfigurationService)["method"]>;

/** Plans and starts a deployment of a new release in the deployment phase; its id once it reaches `state`. */
async function deploy(
  deployer: Deployer,
  environment: string,
  artifacts: { artifactId: string; name: string; version: string }[],
  strategy: { kind: DeploymentStrategyKind; batchSize?: number },
  state: DeploymentState,
) {
  const releaseId = randomUUID();
  await publishReleaseInDeployment(producer, stack.topicPrefix, releaseId);
  const { deployment } = await deployer.planDeployment({
    requestId: randomUUID(),
    releaseId,
    environment,
    artifacts,
    strategy,
  });
  const deploymentId = deployment?.deploymentId as string;
  // The gates read the DML and release facts the deployment service has consumed so far.
  await waitFor(() => deployer.startDeployment({ requestId: randomUUID(), deploymentId }), {
    timeoutMs: 30_000,
    description: "the gates met once the DML and release facts are consumed",
  });
  await waitFor(
    async () => ((await deployer.getDeployment({ deploymentId })).deployment?.state === state ? true : undefined),
    { timeoutMs: 60_000, description: `deployment ${DeploymentState[state]}` },
  );
  return deploymentId;
}

/** Rolls the deployment back by hand; once it is ROLLED_BACK. */
async function backedOut(deployer: Deployer, deploymentId: string) {
  await deployer.rollbackDeployment({ requestId: randomUUID(), deploymentId, reason: "backing out", fast: true });
  await waitFor(
    async () =>
      (await deployer.getDeployment({ deploymentId })).deployment?.state === DeploymentState.ROLLED_BACK
        ? true
        : undefined,
    { timeoutMs: 60_000, description: `deployment ${deploymentId} rolled back` },
  );
}

/** A config manager's DML client and a deployer's deployment client. */
const clients = async () => ({
  dml: createGrpcClient(ConfigurationService, configurationService.address, {
    token: await stack.token("carla", ["config-manager"]),
  }),
  deployer: createGrpcClient(DeploymentService, deploymentService.address, {
    token: await stack.token("dana", ["deployer", "release-manager"]),
  }),
});

const baselineOf = async (dml: Dml, environment: string) => (await dml.getBaseline({ environment })).baseline;

/** A configuration baseline's entries as "ci name@version artifact", sorted. */
const entriesOf = (baseline: Awaited<ReturnType<typeof baselineOf>>) =>
  (baseline?.entries ?? [])
    .map((entry) => `${entry.ciId} ${entry.artifactName}@${entry.artifactVersion} ${entry.artifactId}`)
    .sort();

afterAll(() => stack.stop());

test("a failed verification rolls back by itself and the configuration baseline is restored exactly", async () => {
  const { dml, deployer } = await clients();

  const register = (name: string, version: string) => verifiedArtifact(dml, name, version);
  const [api, sidecar] = [uniqueId("api"), uniqueId("sidecar")];
  const apiOne = await register(api, "1.0.0");
  const apiTwo = await register(api, "2.0.0");
  const sidecarOne = await register(sidecar, "1.0.0");

  const environment = uniqueId("staging");
  const hosts = [uniqueId("host"), uniqueId("host")];
  const notifications = createGrpcClient(NotificationService, releaseService.address, {
    token: await stack.token("sam", ["release-manager"]),
  });
  // Paused, so the deliveries are recorded (held) and never sent: nothing listens at the target.
  const subscribe = async (environments: string[]) => {
    const { subscription } = await notifications.createSubscription({
      requestId: randomUUID(),
      name: `critical in ${environments.join(", ")}`,
      target: { kind: { case: "webhook", value: { url: "http://127.0.0.1:4/hook" } } },
      secret: "secret-of-sre-0123456789",
      filter: { environments, minSeverity: Severity.CRITICAL },
    });
    const subscriptionId = subscription?.subscriptionId as string;
    await notifications.pauseSubscription({ requestId: randomUUID(), subscriptionId, reason: "read, not sent" });
    return subscriptionId;
  };
  const [sre, elsewhere] = await Promise.all([subscribe([environment]), subscribe([uniqueId("production")])]);
  const delivered = async (subscriptionId: string) =>
    (await notifications.listSubscriptionDeliveries({ subscriptionId })).deliveries.map((d) => d.eventType).sort();
  await deployer.registerEnvironment({
    requestId: randomUUID(),
    environment: { name: environment, promotionRank: 1, targetGroups: [{ name: "rest", ciIds: hosts }] },
  });

  // Every verification passes unless the package carries the sidecar (the rollback's does not).
  await stack.executor(deploymentService, {
    environments: [environment],
    command: `[ "$RDM_STEP_KIND" != VERIFY ] || ! echo "$RDM_ARTIFACTS" | grep -q ${sidecar}`,
    poll: true,
  });

  const rolling = { kind: DeploymentStrategyKind.ROLLING, batchSize: 1 };
  const baseline = () => baselineOf(dml, environment);

  const first = await deploy(deployer, environment, [apiOne], rolling, DeploymentState.SUCCEEDED);
  const good = hosts.map((host) => `${host} ${api}@1.0.0 ${apiOne.artifactId}`).sort();
  await waitFor(async () => ((await baseline())?.lastDeploymentId === first ? true : undefined), {
    timeoutMs: 30_000,
    description: "the first deployment in the configuration baseline",
  });
  expect(entriesOf(await baseline())).toEqual(good);

  // Its DeploymentFailed puts api 2.0.0 and the sidecar into the entries (degraded); the
  // DeploymentRolledBack that follows must take them out again, not only put api 1.0.0 back.
  const second = await deploy(deployer, environment, [apiTwo, sidecarOne], rolling, DeploymentState.ROLLED_BACK);
  const restored = await waitFor(
    async () => {
      const found = await baseline();
      return found?.lastDeploymentId === second && found.health === EnvironmentHealth.HEALTHY ? found : undefined;
    },
    { timeoutMs: 30_000, description: "the rollback in the configuration baseline" },
  );
  expect(entriesOf(restored)).toEqual(good);
  expect(restored.entries.some((entry) => entry.artifactName === sidecar)).toBe(false);
  expect(restored.lastKnownGoodDeploymentId).toBe(first);
  const { deployment } = await deployer.getDeployment({ deploymentId: second });
  expect(deployment?.reason).toContain("verification reference-executor failed");

  const critical = [DeploymentFailedSchema, DeploymentRollbackStartedSchema, DeploymentRolledBackSchema];
  const expected = critical.map((schema) => schema.typeName).sort();
  const received = await waitFor(
    async () => {
      const types = await delivered(sre);
      return types.includes(DeploymentRolledBackSchema.typeName) ? types : undefined;
    },
    { timeoutMs: 30_000, description: "the rollback's end delivered to the environment's subscription" },
  );
  expect(received).toEqual(expected);
  expect(await delivered(elsewhere)).toEqual([]);
  dml.close();
  deployer.close();
  notifications.close();
}, 180_000);

test("blue-green: each colour runs what was last deployed to it; the gateway names the live colour", async () => {
  const { dml, deployer } = await clients();
  const bearer = await stack.token("vera", ["viewer"]);
  const api = uniqueId("api");
  const [apiOne, apiTwo] = [await verifiedArtifact(dml, api, "1.0.0"), await verifiedArtifact(dml, api, "2.0.0")];
  const environment = uniqueId("production");
  const [blue, green] = [uniqueId("blue"), uniqueId("green")];
  await deployer.registerEnvironment({
    requestId: randomUUID(),
    environment: {
      name: environment,
      promotionRank: 1,
      targetGroups: [
        { name: "blue", ciIds: [blue] },
        { name: "green", ciIds: [green] },
      ],
    },
  });
  await stack.executor(deploymentService, { environments: [environment], command: "true", poll: true });
  const blueGreen = { kind: DeploymentStrategyKind.BLUE_GREEN };

  // The first goes to blue, the second to green; blue keeps 1.0.0.
  await deploy(deployer, environment, [apiOne], blueGreen, DeploymentState.SUCCEEDED);
  const second = await deploy(deployer, environment, [apiTwo], blueGreen, DeploymentState.SUCCEEDED);
  const expected = [`${blue} ${api}@1.0.0 ${apiOne.artifactId}`, `${green} ${api}@2.0.0 ${apiTwo.artifactId}`].sort();
  const recorded = await waitFor(
    async () => {
      const found = await baselineOf(dml, environment);
      return found?.lastDeploymentId === second ? found : undefined;
    },
    { timeoutMs: 30_000, description: "the second deployment in the configuration baseline" },
  );
  expect(entriesOf(recorded)).toEqual(expected);

  const defined = (await deployer.listEnvironments({})).environments.find((env) => env.name === environment);
  expect(defined?.liveColour).toBe("green");
  expect(defined?.baseline.map((a) => [a.version, a.targetCiIds])).toEqual([
    ["1.0.0", [blue]],
    ["2.0.0", [green]],
  ]);

  const inventory = await waitFor(
    async () => {
      const { body } = await stack.getJson(gateway.url, `/v1/environments/${environment}/inventory`, bearer);
      return body?.lastDeploymentId === second ? body : undefined;
    },
    { timeoutMs: 30_000, description: "the second deployment in the gateway's inventory" },
  );
  expect(inventory.liveColour).toBe("green");
  expect(
    inventory.entries.map((e: Record<string, string>) => `${e.targetCiId} ${e.artifactName}@${e.artifactVersion}`),
  ).toEqual([`${blue} ${api}@1.0.0`, `${green} ${api}@2.0.0`].sort());

  // A third goes to blue and is backed out: blue runs 1.0.0 again, restored by that back-out;
  // green, which it never touched, is still the second deployment's.
  const apiThree = await verifiedArtifact(dml, api, "3.0.0");
  const third = await deploy(deployer, environment, [apiThree], blueGreen, DeploymentState.SUCCEEDED);
  await backedOut(deployer, third);
  const restored = await waitFor(
    async () => {
      const found = await baselineOf(dml, environment);
      return found?.lastDeploymentId === third && found.entries.some((e) => e.artifactVersion === "1.0.0")
        ? found
        : undefined;
    },
    { timeoutMs: 30_000, description: "the back-out in the configuration baseline" },
  );
  expect(restored.entries.map((e) => [e.ciId, e.artifactVersion, e.deploymentId]).sort()).toEqual(
    [
      [blue, "1.0.0", third],
      [green, "2.0.0", second],
    ].sort(),
  );
  dml.close();
  deployer.close();
}, 240_000);

test("a package of one artifact leaves the others running, and its back-out restores only it: the deployment service, the CMDB and the gateway's views agree", async () => {
  const { dml, deployer } = await clients();
  const bearer = await stack.token("vera", ["viewer"]);
  const [api, worker] = [uniqueId("api"), uniqueId("worker")];
  const [apiOne, apiTwo, workerOne, workerTwo] = [
    await verifiedArtifact(dml, api, "1.0.0"),
    await verifiedArtifact(dml, api, "2.0.0"),
    await verifiedArtifact(dml, worker, "1.0.0"),
    await verifiedArtifact(dml, worker, "2.0.0"),
  ];
  const environment = uniqueId("staging");
  const host = uniqueId("host");
  await deployer.registerEnvironment({
    requestId: randomUUID(),
    environment: { name: environment, promotionRank: 1, targetGroups: [{ name: "rest", ciIds: [host] }] },
  });
  await stack.executor(deploymentService, { environments: [environment], command: "true", poll: true });
  const allAtOnce = { kind: DeploymentStrategyKind.ALL_AT_ONCE };

  // The environment's successes and rollbacks in order, as the views record them.
  const outcomes = ["SUCCEEDED", "SUCCEEDED", "SUCCEEDED", "ROLLED_BACK", "SUCCEEDED", "ROLLED_BACK"];
  /**
   * The four views once each has the environment's `count`th outcome (a success or rollback),
   * `last`'s: what runs, as "ci name@version".
   */
  const views = async (last: string, count: number) => {
    const defined = (await deployer.listEnvironments({})).environments.find((env) => env.name === environment);
    const recorded = await waitFor(
      async () => {
        const found = await baselineOf(dml, environment);
        return found?.lastDeploymentId === last && found.version >= BigInt(count) ? found : undefined;
      },
      { timeoutMs: 30_000, description: `deployment ${last} in the configuration baseline` },
    );
    const [inventory, gatewayBaseline] = await Promise.all(
      ["inventory", "baseline"].map((view) =>
        waitFor(
          async () => {
            const path =
              view === "inventory" ? `/v1/environments/${environment}/inventory` : `/v1/baselines/${environment}`;
            const { body } = await stack.getJson(gateway.url, path, bearer);
            // The inventory's last sequence counts starts too: the baseline's version says it.
            const caughtUp = view === "inventory" ? body?.lastOutcome === outcomes[count - 1] : body?.version >= count;
            return body?.lastDeploymentId === last && caughtUp ? body : undefined;
          },
          { timeoutMs: 30_000, description: `deployment ${last} in the gateway's ${view}` },
        ),
      ),
    );
    const listed = (entries: Record<string, string>[], ci: string) =>
      entries.map((e) => `${e[ci]} ${e.artifactName}@${e.artifactVersion}`);
    return {
      deployment: defined?.baseline.flatMap((a) => a.targetCiIds.map((ci) => `${ci} ${a.name}@${a.version}`)).sort(),
      cmdb: recorded.entries.map((e) => `${e.ciId} ${e.artifactName}@${e.artifactVersion}`).sort(),
      inventory: listed(inventory.entries, "targetCiId"),
      gatewayBaseline: listed(gatewayBaseline.entries, "ciId"),
    };
  };
  const agreeing = (running: string[]) => ({
    deployment: running,
    cmdb: running,
    inventory: running,
    gatewayBaseline: running,
  });

  await deploy(deployer, environment, [apiOne, workerOne], allAtOnce, DeploymentState.SUCCEEDED);
  const second = await deploy(deployer, environment, [apiTwo], allAtOnce, DeploymentState.SUCCEEDED);
  expect(await views(second, 2)).toEqual(agreeing([`${host} ${api}@2.0.0`, `${host} ${worker}@1.0.0`].sort()));

  // Worker 2.0.0 since; backing out api 2.0.0 restores api 1.0.0 and leaves worker 2.0.0 running.
  const third = await deploy(deployer, environment, [workerTwo], allAtOnce, DeploymentState.SUCCEEDED);
  expect(await views(third, 3)).toEqual(agreeing([`${host} ${api}@2.0.0`, `${host} ${worker}@2.0.0`].sort()));
  await backedOut(deployer, second);
  expect(await views(second, 4)).toEqual(agreeing([`${host} ${api}@1.0.0`, `${host} ${worker}@2.0.0`].sort()));

  // The host swapped for another: api 2.0.0 goes to the new one only, and its back-out restores api
  // there as it ran (not at all). The host taken out, which neither reached, keeps what the
  // baselines last knew of it. The deployment service lists the environment's targets only.
  const other = uniqueId("host");
  await deployer.changeEnvironment({
    requestId: randomUUID(),
    environment: { name: environment, promotionRank: 1, targetGroups: [{ name: "rest", ciIds: [other] }] },
    reason: "host replaced",
  });
  const fourth = await deploy(deployer, environment, [apiTwo], allAtOnce, DeploymentState.SUCCEEDED);
  await backedOut(deployer, fourth);
  const kept = [`${host} ${api}@1.0.0`, `${host} ${worker}@2.0.0`].sort();
  expect(await views(fourth, 6)).toEqual({ ...agreeing(kept), deployment: [] });
  dml.close();
  deployer.close();
}, 240_000);
