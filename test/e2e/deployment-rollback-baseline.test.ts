// The deployment and configuration services together, on real PostgreSQL and the Kafka protocol:
// artifacts registered and verified in the DML reach the deployment gates; the reference executor
// deploys a first release; a second one adding an artifact fails its verification, rolls back by
// itself, and the configuration service's baseline of the environment is the first one again,
// exactly: what the failed deployment added is gone. Checked through GetBaseline. An SRE's
// subscription to the environment's critical events (the release service's notifier) records the
// failure, the rollback's start and its end, and nothing of the environment's other events.
import { randomUUID } from "node:crypto";
import { createGrpcClient } from "@rdm/grpc";
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
import { e2eStack, publishReleaseInDeployment, type StartedService, verifiedArtifact } from "./harness.js";

const stack = e2eStack("e2e-rollback-baseline");
let producer: Awaited<ReturnType<typeof stack.producer>>;
let configurationService: StartedService;
let deploymentService: StartedService;
let releaseService: StartedService;

beforeAll(async () => {
  [configurationService, deploymentService, releaseService, producer] = await Promise.all([
    stack.configuration(),
    stack.deployment(),
    stack.release(),
    stack.producer(),
  ]);
});

afterAll(() => stack.stop());

test("a failed verification rolls back by itself and the configuration baseline is restored exactly", async () => {
  const dml = createGrpcClient(ConfigurationService, configurationService.address, {
    token: await stack.token("carla", ["config-manager"]),
  });
  const deployer = createGrpcClient(DeploymentService, deploymentService.address, {
    token: await stack.token("dana", ["deployer", "release-manager"]),
  });

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

  const deploy = async (artifacts: { artifactId: string; name: string; version: string }[], state: DeploymentState) => {
    const releaseId = randomUUID();
    await publishReleaseInDeployment(producer, stack.topicPrefix, releaseId);
    const { deployment } = await deployer.planDeployment({
      requestId: randomUUID(),
      releaseId,
      environment,
      artifacts,
      strategy: { kind: DeploymentStrategyKind.ROLLING, batchSize: 1 },
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
  };
  const baseline = async () => (await dml.getBaseline({ environment })).baseline;
  const entries = (found: Awaited<ReturnType<typeof baseline>>) =>
    (found?.entries ?? [])
      .map((entry) => `${entry.ciId} ${entry.artifactName}@${entry.artifactVersion} ${entry.artifactId}`)
      .sort();

  const first = await deploy([apiOne], DeploymentState.SUCCEEDED);
  const good = hosts.map((host) => `${host} ${api}@1.0.0 ${apiOne.artifactId}`).sort();
  await waitFor(async () => ((await baseline())?.lastDeploymentId === first ? true : undefined), {
    timeoutMs: 30_000,
    description: "the first deployment in the configuration baseline",
  });
  expect(entries(await baseline())).toEqual(good);

  // Its DeploymentFailed puts api 2.0.0 and the sidecar into the entries (degraded); the
  // DeploymentRolledBack that follows must take them out again, not only put api 1.0.0 back.
  const second = await deploy([apiTwo, sidecarOne], DeploymentState.ROLLED_BACK);
  const restored = await waitFor(
    async () => {
      const found = await baseline();
      return found?.lastDeploymentId === second && found.health === EnvironmentHealth.HEALTHY ? found : undefined;
    },
    { timeoutMs: 30_000, description: "the rollback in the configuration baseline" },
  );
  expect(entries(restored)).toEqual(good);
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
