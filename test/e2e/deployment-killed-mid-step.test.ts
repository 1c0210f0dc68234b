// The deployment service killed with SIGKILL while a reference executor holds a step under its
// lease, in the middle of a target: started again on the same port and database, it takes the
// executor's report on that lease, and the deployment ends as if nothing happened, each effect
// once: one claim per step, one report per target, one outcome, every stored event on the topic.
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "@rdm/embedded";
import { createGrpcClient } from "@rdm/grpc";
import { createKafka, DEPLOYMENT_EVENTS_TOPIC } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { DeploymentStrategyKind } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import pg from "pg";
import { e2eStack, kill, publishReleaseInDeployment, verifiedArtifact } from "./harness.js";

const stack = e2eStack("e2e-deployment-killed");
const WAIT = { timeoutMs: 60_000 };
const dir = mkdtempSync(path.join(tmpdir(), "rdm-killed-"));

afterAll(async () => {
  await stack.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Every event id on the deployment topic, read from the start. */
async function idsOnTopic(): Promise<string[]> {
  const kafka = createKafka({
    brokers: await testKafkaBrokers(),
    clientId: uniqueId("e2e-killed-reader"),
    logger: createLogger("e2e", "warn"),
  });
  const consumer = kafka.consumer({ groupId: uniqueId("e2e-killed-reader") });
  const ids: string[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [`${stack.topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`], fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void ids.push(String(message.headers?.ce_id)) });
  stack.onStop(() => consumer.disconnect());
  return ids;
}

test("SIGKILL of the deployment service while a step is leased: restarted, it completes the deployment, each effect once", async () => {
  const configuration = await stack.configuration();
  const [databaseUrl, port] = [await stack.database("deployment"), await freePort()];
  const env = await stack.env("deployment", { databaseUrl, port });
  let child = stack.spawnService("deployment", env);
  const address = `127.0.0.1:${port}`;
  const deployer = createGrpcClient(DeploymentService, address, {
    token: await stack.token("dana", ["deployer", "release-manager"]),
  });
  stack.onStop(() => deployer.close());
  const serving = () =>
    waitFor(
      () =>
        deployer.getDeployment({ deploymentId: randomUUID() }).then(
          () => true,
          (error: { code?: number }) => error.code !== 14,
        ),
      { ...WAIT, description: "the deployment service's process serving" },
    );
  await serving();

  const dml = createGrpcClient(ConfigurationService, configuration.address, {
    token: await stack.token("carla", ["config-manager"]),
  });
  stack.onStop(() => dml.close());
  const { artifactId, name } = await verifiedArtifact(dml, uniqueId("api"), "1.0.0");

  const environment = uniqueId("staging");
  const hosts = [uniqueId("host"), uniqueId("host")];
  await deployer.registerEnvironment({
    requestId: randomUUID(),
    environment: { name: environment, promotionRank: 1, targetGroups: [{ name: "rest", ciIds: hosts }] },
  });
  // The first target of the DEPLOY step waits for the test's word, so the service can be killed
  // while the step is held; every target performed is written down.
  const [waiting, go, performed] = [path.join(dir, "waiting"), path.join(dir, "go"), path.join(dir, "performed")];
  await stack.executor({ address } as never, {
    environments: [environment],
    command: `echo "$RDM_STEP_KIND $RDM_TARGET" >> ${performed}; [ "$RDM_STEP_KIND" != DEPLOY ] || [ -e ${go} ] || { touch ${waiting}; while [ ! -e ${go} ]; do sleep 0.05; done; }`,
    poll: true,
  });
  const topic = await idsOnTopic();

  const releaseId = randomUUID();
  await publishReleaseInDeployment(await stack.producer(), stack.topicPrefix, releaseId);
  const { deployment } = await deployer.planDeployment({
    requestId: randomUUID(),
    releaseId,
    environment,
    artifacts: [{ artifactId, name, version: "1.0.0" }],
    strategy: { kind: DeploymentStrategyKind.ALL_AT_ONCE },
  });
  const deploymentId = deployment?.deploymentId as string;
  await waitFor(() => deployer.startDeployment({ requestId: randomUUID(), deploymentId }), {
    ...WAIT,
    description: "the gates met once the DML and release facts are consumed",
  });

  await waitFor(() => existsSync(waiting), { ...WAIT, description: "the executor inside the DEPLOY step" });
  await kill(child);
  child = stack.spawnService("deployment", env);
  await serving();
  // The executor finishes its target and reports it under the lease it took before the kill.
  rmSync(waiting);
  writeFileSync(go, "");

  const ended = await waitFor(
    async () => {
      const current = (await deployer.getDeployment({ deploymentId })).deployment;
      return current?.state === DeploymentState.SUCCEEDED ? current : undefined;
    },
    { ...WAIT, description: "the deployment succeeded" },
  );
  expect(ended.steps.map((step) => step.fencingToken)).toEqual(ended.steps.map(() => 1n));

  const store = new pg.Pool({ connectionString: databaseUrl });
  stack.onStop(() => store.end());
  const { rows } = await store.query<{ id: string; type: string }>(
    "SELECT event_id::text AS id, type FROM events WHERE stream_id = $1 ORDER BY global_position",
    [deploymentId],
  );
  const count = (type: string) => rows.filter((row) => row.type === `rdm.deployment.v1.${type}`).length;
  expect([count("DeploymentStepClaimed"), count("DeploymentStepLeaseExpired"), count("DeploymentSucceeded")]).toEqual([
    ended.steps.length,
    0,
    1,
  ]);
  expect(count("DeploymentTargetProgressed")).toBe(ended.steps.length * hosts.length);
  const lines = readFileSync(performed, "utf8").trim().split("\n");
  expect(new Set(lines).size).toBe(lines.length);
  await waitFor(() => rows.every((row) => topic.includes(row.id)), {
    ...WAIT,
    description: "every stored event of the deployment on the topic",
  });
  const onTopic = topic.filter((id) => rows.some((row) => row.id === id));
  expect(new Set(onTopic).size).toBe(rows.length);
}, 240_000);
