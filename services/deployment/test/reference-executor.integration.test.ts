// The reference executor (the rdm-executor bin's engine) against the service over gRPC: it
// claims steps, runs the configured shell command per target, heartbeats and reports.
import { randomUUID } from "node:crypto";
import { access, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mintDevToken } from "@rdm/auth";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentStrategyKind, StepState } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { type ExecutorLog, nextPollDelay, ReferenceExecutor } from "../src/executor/reference-executor.js";
import { artifact, groups, Harness, rid, secret, strategyOf, uniqueId, waitFor } from "./harness.js";

const harness = new Harness("deployment-ref-exec");
type Client = Awaited<ReturnType<Harness["client"]>>;
let deployer: Client;

beforeAll(async () => {
  await harness.start("deployment_ref_exec");
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
});
afterAll(() => harness.stop());

async function started(
  environment: string,
  targets: string[],
  strategy = strategyOf(DeploymentStrategyKind.ROLLING, { batchSize: 1 }),
) {
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name: environment, promotionRank: 1, targetGroups: groups({ rest: targets }) },
  });
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  await harness.releaseReady(releaseId);
  await harness.artifact(artifactId);
  const { deployment } = await deployer.planDeployment({
    ...rid(),
    releaseId,
    environment,
    artifacts: [artifact(artifactId)],
    strategy,
  });
  const deploymentId = deployment?.deploymentId as string;
  await waitFor(() => deployer.startDeployment({ ...rid(), deploymentId }), { timeoutMs: 30_000 });
  return deploymentId;
}

async function executorFor(
  environment: string,
  command: string,
  logger?: ExecutorLog,
  leaseSeconds = 30,
  address = `127.0.0.1:${harness.service.port}`,
) {
  const token = await mintDevToken({
    subject: "ref-exec",
    roles: ["executor"],
    secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "10m",
  });
  return new ReferenceExecutor({
    address,
    token,
    executorId: uniqueId("ref"),
    environments: [environment],
    labels: [],
    leaseSeconds,
    action: { command },
    ...(logger ? { logger } : {}),
  });
}

/** Log lines by level, as pino's (fields, message) calls give them; `fields` in the same order. */
function captureLog() {
  const lines: [string, string][] = [];
  const fields: Record<string, unknown>[] = [];
  const at = (level: string) => (logged: Record<string, unknown>, message: string) => {
    lines.push([level, message]);
    fields.push(logged);
  };
  return {
    lines,
    fields,
    logger: { debug: at("debug"), info: at("info"), warn: at("warn") } as unknown as ExecutorLog,
  };
}

/**
 * An all-at-once deployment of `targets` CIs whose deploy targets wait for the test's go: the
 * executor's command touches `begun`, then waits for the `go` file (verification runs at once).
 */
async function gatedDeployment(targets: number) {
  const dir = await mkdtemp(join(tmpdir(), "rdm-exec-"));
  const environment = uniqueId("env");
  const deploymentId = await started(
    environment,
    Array.from({ length: targets }, () => uniqueId("ci")),
    strategyOf(DeploymentStrategyKind.ALL_AT_ONCE),
  );
  const [begun, go] = [join(dir, "started"), join(dir, "go")];
  return {
    environment,
    deploymentId,
    command: `[ "$RDM_STEP_KIND" != DEPLOY ] || { touch ${begun}; while [ ! -f ${go} ]; do sleep 0.05; done; }`,
    untilBegun: () =>
      waitFor(
        () =>
          access(begun).then(
            () => true,
            () => undefined,
          ),
        { timeoutMs: 30_000, description: "the deploy target started" },
      ),
    letGo: () => writeFile(go, ""),
  };
}

/** Runs the executor until the deployment reaches `state` (bounded). */
async function runUntil(executor: ReferenceExecutor, deploymentId: string, state: DeploymentState) {
  await waitFor(
    async () => {
      await executor.runOnce();
      return (await deployer.getDeployment({ deploymentId })).deployment?.state === state;
    },
    { timeoutMs: 30_000, description: `deployment ${DeploymentState[state]}` },
  );
}

test("performs every target once by its shell command, verifies, succeeds", async () => {
  const dir = await mkdtemp(join(tmpdir(), "rdm-exec-"));
  const environment = uniqueId("env");
  const targets = [uniqueId("ci"), uniqueId("ci")];
  const deploymentId = await started(environment, targets);
  const executor = await executorFor(environment, `echo "$RDM_STEP_KIND $RDM_TARGET" >> ${join(dir, "log")}`);
  await runUntil(executor, deploymentId, DeploymentState.SUCCEEDED);
  executor.close();
  const lines = (await readFile(join(dir, "log"), "utf8")).trim().split("\n");
  expect(lines).toEqual([
    `DEPLOY ${targets[0]}`,
    `DEPLOY ${targets[1]}`,
    `VERIFY ${targets[0]}`,
    `VERIFY ${targets[1]}`,
  ]);
  const { deployment } = await deployer.getDeployment({ deploymentId });
  expect(deployment?.targets.map((target) => target.ciId).sort()).toEqual([...targets].sort());
});

test("a failing verification command rolls the deployment back, the executor performing the restore", async () => {
  const environment = uniqueId("env");
  const deploymentId = await started(environment, [uniqueId("ci")]);
  // Every verification fails: the forward one starts the rollback; the rollback's own is recorded
  // but does not stop the restore (the baseline must come back whatever).
  const executor = await executorFor(environment, '[ "$RDM_STEP_KIND" != VERIFY ]');
  await runUntil(executor, deploymentId, DeploymentState.ROLLED_BACK);
  executor.close();
  const { deployment } = await deployer.getDeployment({ deploymentId });
  expect(deployment?.reason).toContain("verification reference-executor failed");
  expect(deployment?.steps.filter((step) => step.rollback).map((step) => step.state)).toEqual([
    StepState.COMPLETED,
    StepState.COMPLETED,
  ]);
});

test("stopped in the middle of a step, it gives the step back; claims and outcomes at info", async () => {
  // The first target waits for the test's go, so the stop lands while the step is held.
  const { environment, deploymentId, command, untilBegun, letGo } = await gatedDeployment(2);
  const { lines, logger } = captureLog();
  const executor = await executorFor(environment, command, logger);
  const running = executor.run({ pollMs: 50, maxPollMs: 50 });
  await untilBegun();
  executor.stop();
  await letGo();
  await running;
  executor.close();
  const { deployment } = await deployer.getDeployment({ deploymentId });
  expect(deployment?.steps[0]?.state).toBe(StepState.READY);
  expect(deployment?.targets).toHaveLength(1);
  const types = (await harness.service.context.store.readStream(deploymentId)).map((event) => event.type);
  expect(types.at(-1)).toBe("rdm.deployment.v1.DeploymentStepReleased");
  expect(lines).toEqual([
    ["info", "step claimed"],
    ["info", "step over"],
  ]);
});

test("the service restarting in the middle of a step: heartbeats fail for a while, the lease holds, the step completes", async () => {
  // The deploy target waits for the test's go, so the restart lands while the step is held.
  const { environment, deploymentId, command, untilBegun, letGo } = await gatedDeployment(1);
  const { lines, logger } = captureLog();
  // The default 30 s lease: a heartbeat every 10 s, so one fails while the service is away and a
  // later one, after the restart, renews the lease within its term.
  const executor = await executorFor(environment, command, logger);
  const step = executor.runOnce();
  await untilBegun();
  const port = harness.service.port;
  await harness.service.stop();
  await waitFor(() => (lines.some(([, message]) => message === "heartbeat failed") ? true : undefined), {
    timeoutMs: 30_000,
    description: "a heartbeat refused while the service is away",
  });
  await harness.restart(port);
  await letGo();
  expect(await step).toBe(true);
  await runUntil(executor, deploymentId, DeploymentState.SUCCEEDED);
  executor.close();
  expect(lines.filter(([level]) => level === "warn").map(([, message]) => message)).not.toContain(
    "lease lost: the step is abandoned",
  );
  expect(lines.filter(([, message]) => message === "step over")).toHaveLength(2); // deploy, verify
  const { deployment } = await deployer.getDeployment({ deploymentId });
  expect(deployment?.steps.map((s) => s.fencingToken)).toEqual(deployment?.steps.map(() => 1n));
});

test("a step ended by the service while a target runs (a rollback): the executor stops, with the service's reason", async () => {
  const { environment, deploymentId, command, untilBegun, letGo } = await gatedDeployment(2);
  const { lines, fields, logger } = captureLog();
  const executor = await executorFor(environment, command, logger);
  const step = executor.runOnce();
  await untilBegun();
  await deployer.rollbackDeployment({ ...rid(), deploymentId, reason: "latency up", fast: true });
  await letGo();
  expect(await step).toBe(true);
  executor.close();
  expect(lines.filter(([level]) => level === "warn")).toEqual([]);
  const over = fields[lines.findIndex(([, message]) => message === "step over")];
  expect(over?.outcome).toMatch(/^ended by the service: step 0 has ended .*latency up/);
});

test("a step the service ends while a target runs: the next heartbeat stops the action, and the restore goes out without waiting for the lease", async () => {
  const { environment, deploymentId, command, untilBegun } = await gatedDeployment(1);
  const { lines, fields, logger } = captureLog();
  // A 30 s lease, heartbeats every 10 s; the gated action is never let go.
  const executor = await executorFor(environment, command, logger, 30);
  const step = executor.runOnce();
  await untilBegun();
  await deployer.rollbackDeployment({ ...rid(), deploymentId, reason: "latency up", fast: true });
  expect(await step).toBe(true);
  executor.close();
  const over = fields[lines.findIndex(([, message]) => message === "step over")];
  expect(over?.outcome).toMatch(/^ended by the service: step 0 has ended .*latency up.* while .* was performed$/);
  // It said it stopped (a last call, refused as step.ended): the restore is claimable now, not
  // once the lease it held has run out.
  const other = await executorFor(environment, "true");
  expect(await other.runOnce()).toBe(true);
  other.close();
  const { deployment } = await deployer.getDeployment({ deploymentId });
  expect(deployment?.state).toBe(DeploymentState.ROLLED_BACK);
});

test("the lease gone while a target runs (the service away past its term, the step taken over): the result is not reported", async () => {
  const { environment, deploymentId, command, untilBegun, letGo } = await gatedDeployment(1);
  const { lines, fields, logger } = captureLog();
  // A 2 s lease: the service away for longer lets it lapse, and another executor takes the step.
  const executor = await executorFor(environment, command, logger, 2);
  const step = executor.runOnce();
  await untilBegun();
  const port = harness.service.port;
  await harness.service.stop();
  await waitFor(
    () => (lines.some(([, message]) => message === "lease lost: the step is abandoned") ? true : undefined),
    {
      timeoutMs: 30_000,
      description: "the lease's term over while the service is away",
    },
  );
  await harness.restart(port);
  const other = await executorFor(environment, "true");
  await runUntil(other, deploymentId, DeploymentState.SUCCEEDED);
  other.close();
  await letGo();
  expect(await step).toBe(true);
  executor.close();
  const over = fields[lines.findIndex(([, message]) => message === "step over")];
  expect(over?.outcome).toMatch(/^lease lost while .* was performed$/);
  const { deployment } = await deployer.getDeployment({ deploymentId });
  expect(deployment?.steps[0]?.fencingToken).toBe(2n);
});

/**
 * A TCP relay to the service that can hold up what its clients send for a while (`holdFor`), as a
 * network that delays a request or a service paused before it reads it.
 */
async function delayingRelay(port: number) {
  let holding = false;
  const flushes: (() => void)[] = [];
  const server = createServer((client) => {
    const service = connect(port, "127.0.0.1");
    const pending: Buffer[] = [];
    flushes.push(() => {
      for (const chunk of pending.splice(0)) service.write(chunk);
    });
    client.on("data", (chunk: Buffer) => (holding ? pending.push(chunk) : service.write(chunk)));
    service.pipe(client);
    for (const [from, to] of [
      [client, service],
      [service, client],
    ] as const) {
      from.on("error", () => to.destroy());
      from.on("close", () => to.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    holdFor(ms: number) {
      holding = true;
      setTimeout(() => {
        for (const flush of flushes) flush();
        holding = false;
      }, ms);
    },
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

test("a claim answered after its term by the executor's clock: one heartbeat at once keeps the step, no wait for the lease", async () => {
  const environment = uniqueId("env");
  const relay = await delayingRelay(harness.service.port);
  const { lines, fields, logger } = captureLog();
  const executor = await executorFor(environment, "true", logger, 2, `127.0.0.1:${relay.port}`);
  try {
    // Connected before there is anything to claim.
    expect(await executor.runOnce()).toBe(false);
    const deploymentId = await started(environment, [uniqueId("ci")], strategyOf(DeploymentStrategyKind.ALL_AT_ONCE));
    // The claim reaches the service 3 s after it was sent, past the 2 s lease: the service begins
    // the lease when it takes the claim, the executor counts it from the send.
    relay.holdFor(3_000);
    expect(await executor.runOnce()).toBe(true);
    expect(fields[lines.findIndex(([, message]) => message === "step over")]?.outcome).toMatch(/^completed/);
    await runUntil(executor, deploymentId, DeploymentState.SUCCEEDED);
    // Never taken again after a lapse: each step kept its first lease.
    const { deployment } = await deployer.getDeployment({ deploymentId });
    expect(deployment?.steps.map((s) => s.fencingToken)).toEqual([1n, 1n]);
    expect(lines.filter(([level]) => level === "warn")).toEqual([]);
  } finally {
    executor.close();
    await relay.close();
  }
});

test("idle, it polls at debug, backing off from pollMs to maxPollMs; work resets the pause", async () => {
  const backoff = { pollMs: 1000, maxPollMs: 10_000 };
  const delays = [0];
  for (let i = 0; i < 6; i++) delays.push(nextPollDelay(delays.at(-1) as number, backoff));
  expect(delays).toEqual([0, 1000, 2000, 4000, 8000, 10_000, 10_000]);
  expect(nextPollDelay(0, backoff)).toBe(1000);

  const { lines, logger } = captureLog();
  const executor = await executorFor(uniqueId("idle"), "true", logger);
  await executor.run({ pollMs: 10, maxPollMs: 20, once: true });
  const running = executor.run({ pollMs: 10, maxPollMs: 20 });
  await waitFor(() => (lines.length >= 3 ? true : undefined), { timeoutMs: 10_000 });
  executor.stop();
  await running;
  executor.close();
  expect(new Set(lines.map(([level, message]) => `${level} ${message}`))).toEqual(new Set(["debug no step waiting"]));
});
