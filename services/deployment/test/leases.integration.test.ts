// Leases through gRPC against real PostgreSQL: a lapsed lease nobody takes over is returned to the
// queue by the sweep (once, with replicas racing and across a restart), an executor gives a step
// back with ReleaseStep (a stale token refused), and a retried ClaimStep replays its first answer.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { createGrpcClient, errorDetails } from "@rdm/grpc";
import { createLogger } from "@rdm/observability";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { DeploymentStrategyKind, StepState, TargetOutcome } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { startGrpcService } from "@rdm/runtime";
import { deploymentCommandHandler } from "../src/api/commands.js";
import { deploymentServiceHandlers } from "../src/api/deployment-service.js";
import { startLeaseSweep } from "../src/jobs/lease-sweep.js";
import { deploymentServiceDefinition } from "../src/service.js";
import { groups, Harness, preconditionRules, refusedWith, rid, strategyOf, uniqueId, waitFor } from "./harness.js";

const harness = new Harness("deployment-leases");
type Client = Awaited<ReturnType<Harness["client"]>>;
let deployer: Client;
let executor: Client;

beforeAll(async () => {
  await harness.start("deployment_leases");
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
  executor = await harness.client("agent-1", ["executor"]);
});
afterAll(() => harness.stop());

const ALL_AT_ONCE = strategyOf(DeploymentStrategyKind.ALL_AT_ONCE);
const started = () => harness.startedDeployment(deployer, ALL_AT_ONCE);

const claimIn = async (environment: string, leaseSeconds = 30, requestId = rid().requestId) => {
  const { assignment } = await executor.claimStep({
    requestId,
    executorId: "agent-1",
    environments: [environment],
    leaseSeconds,
  });
  if (!assignment) throw new Error(`no step of ${environment} to claim`);
  return assignment;
};

const firstStep = async (deploymentId: string) => (await deployer.getDeployment({ deploymentId })).deployment?.steps[0];

/** The types of the deployment's stored events, in stream order. */
const storedTypes = async (deploymentId: string) =>
  (await harness.service.context.store.readStream(deploymentId)).map((event) =>
    event.type.replace("rdm.deployment.v1.", ""),
  );

const untilRequeued = (deploymentId: string) =>
  waitFor(async () => ((await firstStep(deploymentId))?.state === StepState.READY ? true : undefined), {
    timeoutMs: 20_000,
    description: `step 0 of ${deploymentId} back in the queue`,
  });

test("a lapsed lease nobody takes over is requeued by the sweep, across a restart; the old holder is refused", async () => {
  const { deploymentId, environment } = await started();
  const held = await claimIn(environment, 1);
  const lease = { deploymentId, stepIndex: 0, fencingToken: held.fencingToken };
  // Stopped while the lease is live: the restarted service's sweep finds it in the queue.
  await harness.service.stop();
  await harness.restart();
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
  executor = await harness.client("agent-1", ["executor"]);
  await untilRequeued(deploymentId);
  expect((await firstStep(deploymentId))?.executorId).toBe("");
  expect(await storedTypes(deploymentId)).toEqual([
    "DeploymentPlanned",
    "DeploymentScheduled",
    "DeploymentStarted",
    "DeploymentStepClaimed",
    "DeploymentStepLeaseExpired",
  ]);
  const ciId = held.step?.targetCiIds[0] as string;
  expect(
    await preconditionRules(executor.reportTargetProgress({ ...rid(), lease, ciId, outcome: TargetOutcome.SUCCEEDED })),
  ).toEqual(["step.lease_lost"]);
  await refusedWith(executor.heartbeatStep({ lease, leaseSeconds: 30 }), status.FAILED_PRECONDITION);
  // Claimed again as a waiting step: no second lapse is recorded for it.
  const again = await claimIn(environment);
  expect(again.fencingToken).toBe(held.fencingToken + 1n);
  expect((await storedTypes(deploymentId)).filter((type) => type === "DeploymentStepLeaseExpired")).toHaveLength(1);
}, 120_000);

test("sweeps racing (replicas and the service's own): each lapse recorded once", async () => {
  const { pool, store } = harness.service.context;
  const logger = createLogger("test", "warn");
  const sweeps = Array.from({ length: 3 }, () =>
    startLeaseSweep({
      pool,
      handler: deploymentCommandHandler(store, () => new Date()),
      intervalMs: 3_600_000,
      logger,
    }),
  );
  try {
    const deployments = await Promise.all(Array.from({ length: 6 }, () => started()));
    for (const { environment } of deployments) await claimIn(environment, 1);
    await waitFor(
      async () => {
        await Promise.all(sweeps.map((sweep) => sweep.runOnce()));
        const steps = await Promise.all(deployments.map(({ deploymentId }) => firstStep(deploymentId)));
        return steps.every((step) => step?.state === StepState.READY) ? true : undefined;
      },
      { timeoutMs: 30_000, description: "every lapsed step requeued" },
    );
    for (const { deploymentId } of deployments) {
      const lapses = (await storedTypes(deploymentId)).filter((type) => type === "DeploymentStepLeaseExpired");
      expect([deploymentId, lapses.length]).toEqual([deploymentId, 1]);
    }
  } finally {
    await Promise.all(sweeps.map((sweep) => sweep.stop()));
  }
}, 120_000);

test("a lease whose step index or fencing token is past what the service stores is refused naming the field", async () => {
  const { deploymentId } = await started();
  const fieldsOf = async (lease: { deploymentId: string; stepIndex: number; fencingToken: bigint }) => {
    const error = await executor.completeStep({ ...rid(), lease }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const details = errorDetails(error);
    expect(details.code).toBe(status.INVALID_ARGUMENT);
    return details.badRequest?.fieldViolations.map((v) => v.field);
  };
  expect(await fieldsOf({ deploymentId, stepIndex: 2 ** 32 - 1, fencingToken: 1n })).toEqual(["lease.step_index"]);
  expect(await fieldsOf({ deploymentId, stepIndex: 0, fencingToken: 2n ** 64n - 1n })).toEqual(["lease.fencing_token"]);
  // At the bounds, the step is only not there.
  const atBounds = { deploymentId, stepIndex: 2 ** 31 - 1, fencingToken: 2n ** 63n - 1n };
  await refusedWith(executor.completeStep({ ...rid(), lease: atBounds }), status.NOT_FOUND);
});

test("ReleaseStep gives the step back to the queue; a stale token and another role are refused", async () => {
  const { deploymentId, environment } = await started();
  const held = await claimIn(environment);
  const lease = { deploymentId, stepIndex: 0, fencingToken: held.fencingToken };
  await refusedWith(deployer.releaseStep({ ...rid(), lease, reason: "not an executor" }), status.PERMISSION_DENIED);
  await refusedWith(executor.releaseStep({ ...rid(), lease, reason: "" }), status.INVALID_ARGUMENT);
  const released = await executor.releaseStep({ ...rid(), lease, reason: "agent shutting down" });
  expect(released.deployment?.steps[0]?.state).toBe(StepState.READY);
  // The lease is void: a second release, a report and a heartbeat with that token are refused.
  expect(await preconditionRules(executor.releaseStep({ ...rid(), lease, reason: "again" }))).toEqual([
    "step.lease_lost",
  ]);
  await refusedWith(executor.heartbeatStep({ lease, leaseSeconds: 30 }), status.FAILED_PRECONDITION);
  const next = await claimIn(environment);
  expect([next.deploymentId, next.fencingToken]).toEqual([deploymentId, held.fencingToken + 1n]);
  // The first holder's token is stale now: giving back the new holder's step is refused.
  expect(await preconditionRules(executor.releaseStep({ ...rid(), lease, reason: "stale" }))).toEqual([
    "step.lease_lost",
  ]);
  expect(await storedTypes(deploymentId)).toContain("DeploymentStepReleased");
  expect((await firstStep(deploymentId))?.fencingToken).toBe(next.fencingToken);
});

test("a retried ClaimStep replays its first answer, with other steps waiting or none, until an idle answer is old", async () => {
  const first = await started();
  const second = await started();
  const both = [first.environment, second.environment];
  const request = { ...rid(), executorId: "agent-1", environments: both, leaseSeconds: 30 };
  const claimed = (await executor.claimStep(request)).assignment;
  const retried = (await executor.claimStep(request)).assignment;
  expect(retried).toEqual(claimed);
  // The other deployment's step was left waiting for the next claim.
  const other = (await executor.claimStep({ ...request, ...rid() })).assignment;
  expect(other?.deploymentId).not.toBe(claimed?.deploymentId);
  expect(other?.fencingToken).toBe(1n);

  // "Nothing waiting" is replayed too, even once a step arrived meanwhile.
  const quiet = uniqueId("env");
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name: quiet, promotionRank: 1, targetGroups: groups({ rest: [uniqueId("ci")] }) },
  });
  const empty = { ...rid(), executorId: "agent-1", environments: [quiet], leaseSeconds: 30 };
  expect((await executor.claimStep(empty)).assignment).toBeUndefined();
  await harness.startedDeployment(deployer, ALL_AT_ONCE, undefined, { environment: quiet });
  expect((await executor.claimStep(empty)).assignment).toBeUndefined();
  const taken = (await executor.claimStep({ ...empty, ...rid() })).assignment;
  expect(taken?.environment).toBe(quiet);

  // The sweep forgets "nothing waiting" answers once they are old (here: at once), never a claim's:
  // a retry then claims afresh.
  const { pool, store } = harness.service.context;
  const sweep = startLeaseSweep({
    pool,
    handler: deploymentCommandHandler(store, () => new Date()),
    intervalMs: 3_600_000,
    logger: createLogger("test", "warn"),
    idleClaimAnswersKeptMs: -1_000,
  });
  try {
    await sweep.runOnce();
  } finally {
    await sweep.stop();
  }
  expect((await executor.claimStep(request)).assignment).toEqual(claimed);
  const lease = { deploymentId: taken?.deploymentId ?? "", stepIndex: 0, fencingToken: taken?.fencingToken ?? 0n };
  await executor.releaseStep({ ...rid(), lease, reason: "given back" });
  expect((await executor.claimStep(empty)).assignment?.deploymentId).toBe(taken?.deploymentId);
});

test("a ClaimStep whose request id another request used is refused as request.idempotency, a step waiting or none", async () => {
  const waiting = await started();
  const paused = await started();
  // The pause's answer is recorded as its stream's version, not as bytes.
  const { requestId } = rid();
  await deployer.pauseDeployment({ requestId, deploymentId: paused.deploymentId, reason: "hold" });
  for (const { environment } of [waiting, paused]) {
    const claim = executor.claimStep({
      requestId,
      executorId: "agent-1",
      environments: [environment],
      leaseSeconds: 30,
    });
    expect(await preconditionRules(claim)).toEqual(["request.idempotency"]);
  }
  // The waiting step is still there for a claim of its own.
  expect((await claimIn(waiting.environment)).deploymentId).toBe(waiting.deploymentId);
});

test("a claim's lease and a failed restore's pause are counted by PostgreSQL's clock, which judges them: a service clock a minute behind leaves them whole", async () => {
  // A second replica on the same database whose clock runs 60 s behind PostgreSQL's.
  const behind = () => new Date(Date.now() - 60_000);
  const env = harness.serviceEnv();
  const definition = deploymentServiceDefinition(env);
  const replica = await startGrpcService(
    {
      ...definition,
      workers: undefined,
      services: ({ store, pool }) => [deploymentServiceHandlers({ store, pool, clock: behind })],
    },
    { ...env, GRPC_PORT: "0" },
  );
  try {
    const { environment } = await started();
    const onReplica = createGrpcClient(DeploymentService, `127.0.0.1:${replica.port}`, {
      token: await harness.token("agent-3", ["executor"]),
    });
    const request = { executorId: "agent-3", environments: [environment], leaseSeconds: 30 };
    const claimed = (await onReplica.claimStep({ ...rid(), ...request })).assignment;
    expect(claimed?.fencingToken).toBe(1n);
    const expires = timestampDate(claimed?.leaseExpiresAt ?? timestampFromDate(new Date(0))).getTime();
    expect(expires).toBeGreaterThan(Date.now() + 20_000);
    // Another executor finds it held, not lapsed.
    expect((await executor.claimStep({ ...rid(), ...request, executorId: "agent-1" })).assignment).toBeUndefined();
    // A failed restore's pause before it is tried again is counted by the same clock: not over at once.
    const lease = { deploymentId: claimed?.deploymentId ?? "", stepIndex: 0, fencingToken: 1n };
    for (const ciId of claimed?.step?.targetCiIds ?? [])
      await onReplica.reportTargetProgress({ ...rid(), lease, ciId, outcome: TargetOutcome.SUCCEEDED });
    await onReplica.completeStep({ ...rid(), lease });
    await deployer.rollbackDeployment({ ...rid(), deploymentId: lease.deploymentId, reason: "bad build", fast: true });
    const restore = (await onReplica.claimStep({ ...rid(), ...request })).assignment;
    const restoreLease = { ...lease, stepIndex: restore?.step?.index ?? -1, fencingToken: restore?.fencingToken ?? 0n };
    await onReplica.failStep({ ...rid(), lease: restoreLease, reason: "target unreachable" });
    expect((await executor.claimStep({ ...rid(), ...request, executorId: "agent-1" })).assignment).toBeUndefined();
    onReplica.close();
  } finally {
    await replica.stop();
  }
});
