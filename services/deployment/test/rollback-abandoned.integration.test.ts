// AbandonRollback over gRPC against real PostgreSQL, its event read back from the Kafka topic: a
// rollback whose restore keeps failing is given up, which frees the environment for the next
// deployment; a restore an executor still holds keeps that environment's steps until it stops.
import { status } from "@grpc/grpc-js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  DeploymentStrategyKind,
  StepKind,
  StepState,
  TargetOutcome,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { groups, Harness, preconditionRules, refusedWith, rid, strategyOf, uniqueId, waitFor } from "./harness.js";

const harness = new Harness("deployment-abandon");
type Client = Awaited<ReturnType<Harness["client"]>>;
let deployer: Client;
let executor: Client;
let other: Client;
const strategy = strategyOf(DeploymentStrategyKind.ALL_AT_ONCE);

beforeAll(async () => {
  await harness.start("deployment_abandon");
  await harness.readOwnTopic();
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
  executor = await harness.client("agent-1", ["executor"]);
  other = await harness.client("agent-2", ["executor"]);
});
afterAll(() => harness.stop());

const claimNow = async (environment: string, client = executor) =>
  (await client.claimStep({ ...rid(), executorId: "agent", environments: [environment], leaseSeconds: 30 })).assignment;

const claim = (environment: string, client = executor) =>
  waitFor(() => claimNow(environment, client), { timeoutMs: 15_000, description: `a step of ${environment}` });

const leaseOf = (assignment: Awaited<ReturnType<typeof claim>>) => ({
  deploymentId: assignment.deploymentId,
  stepIndex: assignment.step?.index ?? 0,
  fencingToken: assignment.fencingToken,
});

/** A deployment whose first step deployed its targets, rolled back by hand; the restore claimed. */
async function rollingBack() {
  const targets = [uniqueId("ci"), uniqueId("ci")].sort();
  const { deploymentId, environment } = await harness.startedDeployment(deployer, strategy, groups({ rest: targets }));
  const deploy = await claim(environment);
  for (const ciId of targets) {
    await executor.reportTargetProgress({ ...rid(), lease: leaseOf(deploy), ciId, outcome: TargetOutcome.SUCCEEDED });
  }
  await executor.completeStep({ ...rid(), lease: leaseOf(deploy) });
  await deployer.rollbackDeployment({ ...rid(), deploymentId, reason: "error rate up", fast: true });
  const restore = await claim(environment);
  expect([restore.deploymentId, restore.step?.kind]).toEqual([deploymentId, StepKind.ROLLBACK]);
  return { deploymentId, environment, targets, restore };
}

/** Starts a planned deployment once the upstream facts have reached the gates. */
const start = (deploymentId: string) =>
  waitFor(() => deployer.startDeployment({ ...rid(), deploymentId }), {
    timeoutMs: 30_000,
    description: "gates met once the upstream facts are consumed",
  });

test("a rollback whose restore keeps failing is given up: FAILED again, the environment free, no second rollback", async () => {
  const { deploymentId, environment, targets, restore } = await rollingBack();
  await executor.failStep({ ...rid(), lease: leaseOf(restore), reason: "target unreachable" });
  const next = await harness.plannedDeployment(deployer, strategy, environment);
  expect(await preconditionRules(deployer.startDeployment({ ...rid(), deploymentId: next.deploymentId }))).toContain(
    "gate.environment_busy",
  );

  // Only a deployer or release manager, only while rolling back, and with a reason.
  await refusedWith(executor.abandonRollback({ ...rid(), deploymentId, reason: "x" }), status.PERMISSION_DENIED);
  expect(
    await preconditionRules(deployer.abandonRollback({ ...rid(), deploymentId: next.deploymentId, reason: "x" })),
  ).toEqual(["deployment.state"]);
  await refusedWith(deployer.abandonRollback({ ...rid(), deploymentId, reason: "" }), status.INVALID_ARGUMENT);

  const { deployment } = await deployer.abandonRollback({ ...rid(), deploymentId, reason: "hosts restored by hand" });
  expect([deployment?.state, deployment?.rollbackAbandoned, deployment?.reason]).toEqual([
    DeploymentState.FAILED,
    true,
    "hosts restored by hand",
  ]);
  expect(deployment?.steps.filter((s) => s.rollback).map((s) => s.state)).toEqual([StepState.SKIPPED]);
  const published = await waitFor(
    () =>
      harness.published.get(deploymentId)?.find((e) => e.$typeName === "rdm.deployment.v1.DeploymentRollbackAbandoned"),
    { timeoutMs: 20_000, description: "DeploymentRollbackAbandoned on Kafka" },
  );
  expect(published).toMatchObject({ reason: "hosts restored by hand", unrestoredTargetCiIds: targets, environment });
  // Rolled back by hand, it had recorded no failure: the outcome comes with the abandonment,
  // numbered in its environment, naming the targets the deploy step took up.
  const failure = harness.published
    .get(deploymentId)
    ?.find((e) => e.$typeName === "rdm.deployment.v1.DeploymentFailed");
  expect(failure).toMatchObject({
    reason: "rollback given up: hosts restored by hand",
    environmentSequence: 2n,
    artifacts: [{ targetCiIds: targets }],
  });

  // A deployment since may have replaced what the restore would put back: no second rollback.
  expect(await preconditionRules(deployer.rollbackDeployment({ ...rid(), deploymentId, reason: "again" }))).toEqual([
    "deployment.rollback_abandoned",
  ]);
  // The environment is the next deployment's, and the given-up restore is never handed out.
  await start(next.deploymentId);
  const first = await claim(environment, other);
  expect([first.deploymentId, first.step?.kind]).toEqual([next.deploymentId, StepKind.DEPLOY]);
});

test("given up while an executor holds the restore: the next deployment's steps wait until it has stopped", async () => {
  const { deploymentId, environment, restore } = await rollingBack();
  await deployer.abandonRollback({ ...rid(), deploymentId, reason: "giving up" });
  const next = await harness.plannedDeployment(deployer, strategy, environment);
  await start(next.deploymentId);
  // The holder may still be restoring the targets the next deployment would deploy to.
  expect(await claimNow(environment, other)).toBeUndefined();
  expect(
    await preconditionRules(executor.releaseStep({ ...rid(), lease: leaseOf(restore), reason: "stopped" })),
  ).toEqual(["step.ended"]);
  const first = await claimNow(environment, other);
  expect([first?.deploymentId, first?.step?.kind]).toEqual([next.deploymentId, StepKind.DEPLOY]);
});
