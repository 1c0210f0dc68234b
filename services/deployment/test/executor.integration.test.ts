import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { errorDetails } from "@rdm/grpc";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  CanaryStageSchema,
  type DeploymentStrategy,
  DeploymentStrategyKind,
  type DeploymentSucceeded,
  DeploymentSucceededSchema,
  StepKind,
  StepState,
  TargetOutcome,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { groups, Harness, preconditionRules, refusedWith, rid, strategyOf, uniqueId, waitFor } from "./harness.js";

const harness = new Harness("deployment-exec");
type Client = Awaited<ReturnType<Harness["client"]>>;
let deployer: Client;
let executor: Client;

beforeAll(async () => {
  await harness.start("deployment_exec");
  await harness.readOwnTopic();
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
  executor = await harness.client("agent-1", ["executor"]);
});
afterAll(() => harness.stop());

const startedDeployment = (
  strategy: DeploymentStrategy,
  targetGroups?: ReturnType<typeof groups>,
  existing?: { environment: string },
) => harness.startedDeployment(deployer, strategy, targetGroups, existing);

/** Claims the next step of this environment (bounded poll: a canary pause may hold it). */
const claim = (environment: string, client = executor, executorId = "agent-1", leaseSeconds = 30) =>
  waitFor(
    async () =>
      (await client.claimStep({ ...rid(), executorId, environments: [environment], leaseSeconds })).assignment,
    { timeoutMs: 15_000, description: `a step of ${environment} to claim` },
  );

/** Claims the next step, reports every target succeeded (and verified), completes it. */
const runStep = async (environment: string, verificationPassed = true) =>
  perform(await claim(environment), verificationPassed);

const leaseOf = (assignment: Awaited<ReturnType<typeof claim>>) => ({
  deploymentId: assignment.deploymentId,
  stepIndex: assignment.step?.index ?? 0,
  fencingToken: assignment.fencingToken,
});

/** Reports every target of the claimed step succeeded (and verified), completes it. */
async function perform(assignment: Awaited<ReturnType<typeof claim>>, verificationPassed = true) {
  const lease = leaseOf(assignment);
  const verify = assignment.step?.kind === StepKind.VERIFY;
  for (const ciId of assignment.step?.targetCiIds ?? []) {
    const reported = await executor.reportTargetProgress({
      ...rid(),
      lease,
      ciId,
      outcome: TargetOutcome.SUCCEEDED,
      logLines: [`deployed on ${ciId}`],
      verifications: verify ? [{ check: "smoke", passed: verificationPassed, detail: "" }] : [],
    });
    // A forward step whose report started the automatic rollback is over (its lease is void).
    const backingOut = reported.deployment?.state === DeploymentState.ROLLING_BACK;
    if (backingOut && !assignment.step?.rollback) return { assignment, rolledBackOn: ciId };
  }
  await executor.completeStep({ ...rid(), lease });
  return { assignment, rolledBackOn: undefined };
}

const stateOf = async (deploymentId: string) => (await deployer.getDeployment({ deploymentId })).deployment;

const outcomesOf = (deploymentId: string, count: number, timeoutMs = 20_000) =>
  waitFor(
    () => {
      const outcomes = (harness.published.get(deploymentId) ?? []).filter((event) => "environmentSequence" in event);
      return outcomes.length >= count ? outcomes : undefined;
    },
    { timeoutMs, description: `${count} outcome events of ${deploymentId} on Kafka` },
  );

test("all at once: claimed, reported, verified; outcomes numbered per environment on Kafka; the baseline shows it", async () => {
  const { deploymentId, environment, artifactId } = await startedDeployment(
    strategyOf(DeploymentStrategyKind.ALL_AT_ONCE),
  );
  await runStep(environment);
  await runStep(environment);
  expect((await stateOf(deploymentId))?.state).toBe(DeploymentState.SUCCEEDED);
  const outcomes = await outcomesOf(deploymentId, 2);
  expect(outcomes.map((event) => [event.$typeName, event.environmentSequence])).toEqual([
    ["rdm.deployment.v1.DeploymentStarted", 1n],
    ["rdm.deployment.v1.DeploymentSucceeded", 2n],
  ]);
  // Nothing promotes from the environment: it is production, and the start and success say so.
  expect(outcomes.map((event) => event.production)).toEqual([true, true]);
  const listed = (await deployer.listEnvironments({})).environments.find((env) => env.name === environment);
  expect(listed?.baseline.map((a) => a.artifactId)).toEqual([artifactId]);
  expect(listed?.baselineDeploymentId).toBe(deploymentId);
  // Since the success, to the millisecond.
  const succeededAt = (outcomes[1] as DeploymentSucceeded | undefined)?.metadata?.occurredAt;
  expect(listed?.baselineSince && timestampDate(listed.baselineSince)).toEqual(
    succeededAt && timestampDate(succeededAt),
  );
  const { deployments } = await deployer.listDeployments({ environment, states: [DeploymentState.SUCCEEDED] });
  expect(deployments.map((deployment) => deployment.deploymentId)).toEqual([deploymentId]);
});

test("a target failed within max_failed_targets keeps what it ran: the success on Kafka and the baseline leave it out", async () => {
  const [failing, fine] = [uniqueId("ci"), uniqueId("ci")];
  const { deploymentId, environment, artifactId } = await startedDeployment(
    strategyOf(DeploymentStrategyKind.ROLLING, { batchSize: 2, maxFailedTargets: 1 }),
    groups({ rest: [failing, fine] }),
  );
  for (let step = 0; step < 2; step++) {
    const assignment = await claim(environment);
    const lease = leaseOf(assignment);
    for (const ciId of assignment.step?.targetCiIds ?? []) {
      const outcome = ciId === failing ? TargetOutcome.FAILED : TargetOutcome.SUCCEEDED;
      await executor.reportTargetProgress({ ...rid(), lease, ciId, outcome });
    }
    await executor.completeStep({ ...rid(), lease });
  }
  expect((await stateOf(deploymentId))?.state).toBe(DeploymentState.SUCCEEDED);
  const [, succeeded] = await outcomesOf(deploymentId, 2);
  expect(succeeded).toMatchObject({ failedTargetCiIds: [failing], artifacts: [{ artifactId, targetCiIds: [fine] }] });
  const listed = (await deployer.listEnvironments({})).environments.find((env) => env.name === environment);
  expect(listed?.baseline.map((a) => [a.artifactId, a.targetCiIds])).toEqual([[artifactId, [fine]]]);
});

test("production as the definition says: a side environment nothing follows is not production when it says so; one followed is when it says so", async () => {
  const [sandbox, lab, after] = [uniqueId("sandbox"), uniqueId("lab"), uniqueId("after")];
  const targetGroups = () => groups({ rest: [uniqueId("ci")] });
  const registered = await deployer.registerEnvironment({
    ...rid(),
    environment: { name: sandbox, promotionRank: 50, targetGroups: targetGroups(), production: false },
  });
  expect(registered.environment?.production).toBe(false);
  // lab is followed by another environment, yet says it is production.
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name: lab, promotionRank: 60, targetGroups: targetGroups(), production: true },
  });
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name: after, promotionRank: 61, targetGroups: targetGroups(), promotesFrom: lab },
  });
  const listed = new Map((await deployer.listEnvironments({})).environments.map((env) => [env.name, env.production]));
  expect([listed.get(sandbox), listed.get(lab), listed.get(after)]).toEqual([false, true, undefined]);

  const production = [];
  for (const environment of [sandbox, lab]) {
    const { deploymentId } = await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE), undefined, {
      environment,
    });
    await runStep(environment);
    await runStep(environment);
    production.push((await outcomesOf(deploymentId, 2)).map((event) => event.production));
  }
  expect(production).toEqual([
    [false, false],
    [true, true],
  ]);
  // Each success lists the environments production then: lab and after (the end of its order), not sandbox.
  const { deploymentId } = await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE), undefined, {
    environment: lab,
  });
  await runStep(lab);
  await runStep(lab);
  const succeeded = (await outcomesOf(deploymentId, 2))[1] as DeploymentSucceeded | undefined;
  const listedNow = succeeded?.productionEnvironments ?? [];
  expect([listedNow.includes(lab), listedNow.includes(after), listedNow.includes(sandbox)]).toEqual([
    true,
    true,
    false,
  ]);
  expect(listedNow).toEqual([...listedNow].sort());
});

test("a report too large for one Kafka message is refused and records nothing; a smaller one goes on", async () => {
  const { environment } = await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE));
  const assignment = await claim(environment);
  const lease = {
    deploymentId: assignment.deploymentId,
    stepIndex: assignment.step?.index ?? 0,
    fencingToken: assignment.fencingToken,
  };
  const report = (logLines: string[]) =>
    executor.reportTargetProgress({
      ...rid(),
      lease,
      ciId: assignment.step?.targetCiIds[0] as string,
      outcome: TargetOutcome.IN_PROGRESS,
      logLines,
    });
  // Each line within its own limit, 2 MB together.
  const refusal = await report(Array.from({ length: 500 }, () => "x".repeat(4000))).catch((e: unknown) => e);
  // Named by the request's field that takes the most of it.
  const refused = errorDetails(refusal);
  expect(refused.badRequest?.fieldViolations.map((v) => [v.field, v.reason])).toEqual([
    ["log_lines", "event.too_large"],
  ]);
  expect(refused.message).toMatch(/^invalid request: log_lines: the rdm\.deployment\.v1\.DeploymentTargetProgressed/);
  const before = (await stateOf(assignment.deploymentId))?.version;
  const reported = await report(Array.from({ length: 50 }, () => "x".repeat(4000)));
  expect(reported.deployment?.version).toBe((before ?? 0n) + 1n);
});

test("executors racing for one step: exactly one claims it", async () => {
  const { environment } = await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE));
  const agents = await Promise.all(Array.from({ length: 8 }, (_, i) => harness.client(`agent-${i}`, ["executor"])));
  const claims = await Promise.all(
    agents.map((agent, i) =>
      agent.claimStep({ ...rid(), executorId: `agent-${i}`, environments: [environment], leaseSeconds: 30 }),
    ),
  );
  const winners = claims.filter((response) => response.assignment);
  expect(winners).toHaveLength(1);
  expect(winners[0]?.assignment?.fencingToken).toBe(1n);
});

test("an expired lease returns the step to the queue; the old holder's reports are refused", async () => {
  const { deploymentId, environment } = await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE));
  const first = await claim(environment, executor, "agent-slow", 1);
  const oldLease = { deploymentId, stepIndex: 0, fencingToken: first.fencingToken };
  const other = await harness.client("agent-2", ["executor"]);
  // Claimable again once the 1 s lease ran out.
  const second = await claim(environment, other, "agent-2");
  expect(second.fencingToken).toBe(first.fencingToken + 1n);
  const ciId = first.step?.targetCiIds[0] as string;
  expect(
    await preconditionRules(
      executor.reportTargetProgress({ ...rid(), lease: oldLease, ciId, outcome: TargetOutcome.SUCCEEDED }),
    ),
  ).toEqual(["step.lease_lost"]);
  expect(await preconditionRules(executor.completeStep({ ...rid(), lease: oldLease }))).toEqual(["step.lease_lost"]);
  // A lease on a deployment that does not exist is the executor's mistake, not a lost lease.
  const nowhere = { ...oldLease, deploymentId: "00000000-0000-4000-8000-000000000000" };
  await refusedWith(executor.completeStep({ ...rid(), lease: nowhere }), status.NOT_FOUND);
  // A token above the step's own was never given.
  const forged = errorDetails(
    await other.heartbeatStep({ lease: { ...oldLease, fencingToken: 7n }, leaseSeconds: 30 }).catch((e: unknown) => e),
  );
  expect(forged.preconditionFailure?.violations.map((v) => [v.type, v.description])).toEqual([
    [
      "step.lease_lost",
      `the lease on step 0 with fencing token 7 was never given: the step is CLAIMED with fencing token ${second.fencingToken}`,
    ],
  ]);
  const heartbeat = errorDetails(
    await executor.heartbeatStep({ lease: oldLease, leaseSeconds: 30 }).catch((error: unknown) => error),
  );
  expect([heartbeat.code, heartbeat.preconditionFailure?.violations[0]?.description]).toEqual([
    status.FAILED_PRECONDITION,
    `the lease on step 0 with fencing token ${first.fencingToken} was taken over (fencing token ${second.fencingToken} holds it)`,
  ]);
  const newLease = { ...oldLease, fencingToken: second.fencingToken };
  expect((await other.heartbeatStep({ lease: newLease, leaseSeconds: 30 })).leaseExpiresAt).toBeDefined();
  const types = (await stateOf(deploymentId))?.steps[0];
  expect(types?.executorId).toBe("agent-2");
});

test("reports on a step a failed verification has ended are refused as step.ended, not as a lost lease", async () => {
  const { deploymentId, environment } = await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE));
  await runStep(environment);
  const verify = await claim(environment);
  expect(verify.step?.kind).toBe(StepKind.VERIFY);
  const lease = { deploymentId, stepIndex: verify.step?.index ?? 0, fencingToken: verify.fencingToken };
  const [first, second] = verify.step?.targetCiIds ?? [];
  const failed = await executor.reportTargetProgress({
    ...rid(),
    lease,
    ciId: first,
    outcome: TargetOutcome.SUCCEEDED,
    verifications: [{ check: "smoke", passed: false }],
  });
  expect(failed.deployment?.state).toBe(DeploymentState.ROLLING_BACK);
  const refusals = await Promise.all(
    [
      executor.reportTargetProgress({ ...rid(), lease, ciId: second, outcome: TargetOutcome.SUCCEEDED }),
      executor.completeStep({ ...rid(), lease }),
      executor.heartbeatStep({ lease, leaseSeconds: 30 }),
    ].map(async (call) => errorDetails(await call.catch((error: unknown) => error)).preconditionFailure?.violations),
  );
  for (const violations of refusals) {
    expect(violations?.map((v) => v.type)).toEqual(["step.ended"]);
    expect(violations?.[0]?.description).toMatch(
      /^step 1 has ended FAILED, the deployment is ROLLING_BACK \(.*smoke.*\): report nothing more for it$/,
    );
  }
});

test("a rollback taken while an executor holds a step restores only once that executor heard the step ended, or its lease ran out", async () => {
  const other = await harness.client("agent-2", ["executor"]);
  const claimNow = async (environment: string) =>
    (await other.claimStep({ ...rid(), executorId: "agent-2", environments: [environment], leaseSeconds: 30 }))
      .assignment;
  const rolledBackWhileHeld = async (leaseSeconds: number) => {
    const { deploymentId, environment } = await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE));
    const held = await claim(environment, executor, "agent-1", leaseSeconds);
    await deployer.rollbackDeployment({ ...rid(), deploymentId, reason: "error rate up", fast: true });
    // The holder has heard nothing yet: it may still be deploying to the targets the restore takes.
    expect(await claimNow(environment)).toBeUndefined();
    const lease = { deploymentId, stepIndex: held.step?.index ?? 0, fencingToken: held.fencingToken };
    return {
      environment,
      lease,
      expires: timestampDate(held.leaseExpiresAt as NonNullable<typeof held.leaseExpiresAt>),
    };
  };

  // A heartbeat hears the step ended, but runs beside the holder's work: the restore still waits.
  // A report (sent once a target's action is over) refused so says it stopped: the restore goes.
  const told = await rolledBackWhileHeld(30);
  expect(await preconditionRules(executor.heartbeatStep({ lease: told.lease, leaseSeconds: 30 }))).toEqual([
    "step.ended",
  ]);
  expect(await claimNow(told.environment)).toBeUndefined();
  expect(await preconditionRules(executor.releaseStep({ ...rid(), lease: told.lease, reason: "stopped" }))).toEqual([
    "step.ended",
  ]);
  expect((await claimNow(told.environment))?.step?.kind).toBe(StepKind.ROLLBACK);

  // Never heard from again: the restore goes out once its lease ran out.
  const silent = await rolledBackWhileHeld(2);
  const restore = await claim(silent.environment, other, "agent-2");
  expect(restore.step?.kind).toBe(StepKind.ROLLBACK);
  expect(Date.now()).toBeGreaterThanOrEqual(silent.expires.getTime());
});

test("steps waiting in an environment go to executors with its labels as they are now, changed since the step was queued", async () => {
  const environment = uniqueId("env");
  const targetGroups = groups({ rest: [uniqueId("ci")] });
  const definition = (executorLabels: string[]) => ({
    name: environment,
    promotionRank: 1,
    targetGroups,
    executorLabels,
  });
  await deployer.registerEnvironment({ ...rid(), environment: definition(["dc-east"]) });
  await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE), targetGroups, { environment });
  await deployer.changeEnvironment({ ...rid(), environment: definition(["dc-west"]), reason: "moved to dc-west" });
  const claimWith = async (labels: string[]) =>
    (
      await executor.claimStep({
        ...rid(),
        executorId: "agent-1",
        environments: [environment],
        labels,
        leaseSeconds: 30,
      })
    ).assignment;
  expect(await claimWith(["dc-east"])).toBeUndefined();
  expect((await claimWith(["dc-west"]))?.step?.index).toBe(0);
});

test("canary: paused holds the queue, a manual stage waits for the promotion", async () => {
  const stages = [
    create(CanaryStageSchema, { weightPercent: 50, manualPromotion: true }),
    create(CanaryStageSchema, { weightPercent: 100 }),
  ];
  const targets = groups({ rest: [uniqueId("ci"), uniqueId("ci")] });
  const { deploymentId, environment } = await startedDeployment(
    strategyOf(DeploymentStrategyKind.CANARY, { canaryStages: stages }),
    targets,
  );
  await deployer.pauseDeployment({ ...rid(), deploymentId, reason: "hold on" });
  const nothing = await executor.claimStep({
    ...rid(),
    executorId: "agent-1",
    environments: [environment],
    leaseSeconds: 30,
  });
  expect(nothing.assignment).toBeUndefined();
  await deployer.resumeDeployment({ ...rid(), deploymentId });
  await runStep(environment);
  expect((await stateOf(deploymentId))?.awaitingPromotion).toBe(true);
  const held = await executor.claimStep({
    ...rid(),
    executorId: "agent-1",
    environments: [environment],
    leaseSeconds: 30,
  });
  expect(held.assignment).toBeUndefined();
  await deployer.promoteDeployment({ ...rid(), deploymentId, comment: "metrics fine" });
  const second = await runStep(environment);
  expect(second.assignment.step?.targetCiIds).toEqual([targets[0]?.ciIds[1]]);
  await runStep(environment);
  expect((await stateOf(deploymentId))?.state).toBe(DeploymentState.SUCCEEDED);
});

test("blue/green: deploy to the idle colour, switch; a back-out switches straight back, then restores the colour it left", async () => {
  const colours = groups({ blue: [uniqueId("blue")], green: [uniqueId("green")] });
  const first = await startedDeployment(strategyOf(DeploymentStrategyKind.BLUE_GREEN), colours);
  const { deploymentId, environment } = first;
  const deployed = await runStep(environment);
  expect(deployed.assignment.step?.colour).toBe("blue");
  await runStep(environment);
  const switched = await runStep(environment);
  expect(switched.assignment.step?.kind).toBe(StepKind.SWITCH);
  const live = async () => (await deployer.listEnvironments({})).environments.find((env) => env.name === environment);
  expect((await live())?.liveColour).toBe("blue");

  // The next release goes to green; backed out after the switch: one switch back to blue.
  const next = await startedDeployment(strategyOf(DeploymentStrategyKind.BLUE_GREEN), colours, { environment });
  expect((await runStep(environment)).assignment.step?.colour).toBe("green");
  await runStep(environment);
  await runStep(environment);
  expect((await live())?.liveColour).toBe("green");
  // Each colour runs the package last deployed to it, in the success event and the baseline.
  const [blue, green] = [colours[0]?.ciIds ?? [], colours[1]?.ciIds ?? []];
  const placed = (artifacts: { artifactId: string; targetCiIds: string[] }[] = []) =>
    artifacts.map((artifact) => [artifact.artifactId, artifact.targetCiIds]);
  const succeeded = (await outcomesOf(next.deploymentId, 2)).at(-1) as DeploymentSucceeded | undefined;
  expect(succeeded?.$typeName).toBe(DeploymentSucceededSchema.typeName);
  expect(placed(succeeded?.artifacts)).toEqual([[next.artifactId, green]]);
  expect(placed((await live())?.baseline)).toEqual([
    [first.artifactId, blue],
    [next.artifactId, green],
  ]);
  await deployer.rollbackDeployment({ ...rid(), deploymentId: next.deploymentId, reason: "latency up", fast: false });
  const back = await runStep(environment);
  expect([back.assignment.step?.kind, back.assignment.step?.colour]).toEqual([StepKind.SWITCH, "blue"]);
  expect((await live())?.liveColour).toBe("green"); // recorded with the outcome
  // Then green, which got the new version, gets the baseline back (it had none) and is verified.
  const restore = await runStep(environment);
  expect([restore.assignment.step?.kind, restore.assignment.step?.targetCiIds]).toEqual([StepKind.ROLLBACK, green]);
  expect(restore.assignment.artifacts).toEqual([]);
  await runStep(environment);
  expect((await stateOf(next.deploymentId))?.state).toBe(DeploymentState.ROLLED_BACK);
  expect((await live())?.liveColour).toBe("blue");
  const rolledBack = (await outcomesOf(next.deploymentId, 3)).at(-1);
  expect(rolledBack?.artifacts).toEqual((await stateOf(deploymentId))?.artifacts);
});

test("a failed verification rolls back automatically; DeploymentRolledBack carries the whole restored baseline", async () => {
  const first = await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE));
  await runStep(first.environment);
  await runStep(first.environment);
  const good = (await stateOf(first.deploymentId))?.artifacts;
  // An environment after this one in the promotion order: from now on, this one is not production.
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name: uniqueId("env"), promotionRank: 2, promotesFrom: first.environment },
  });

  const second = await startedDeployment(
    strategyOf(DeploymentStrategyKind.ROLLING, { batchSize: 1 }),
    undefined,
    first,
  );
  await runStep(first.environment);
  await runStep(first.environment);
  const verification = await runStep(first.environment, false);
  expect(verification.rolledBackOn).toBeDefined();
  expect((await stateOf(second.deploymentId))?.state).toBe(DeploymentState.ROLLING_BACK);
  const restore = await runStep(first.environment);
  expect(restore.assignment.step?.kind).toBe(StepKind.ROLLBACK);
  expect(restore.assignment.artifacts).toEqual(good);
  await runStep(first.environment);
  expect((await stateOf(second.deploymentId))?.state).toBe(DeploymentState.ROLLED_BACK);
  const outcomes = await outcomesOf(second.deploymentId, 3);
  expect(outcomes.map((event) => [event.$typeName, event.environmentSequence])).toEqual([
    ["rdm.deployment.v1.DeploymentStarted", 3n],
    ["rdm.deployment.v1.DeploymentFailed", 4n],
    ["rdm.deployment.v1.DeploymentRolledBack", 5n],
  ]);
  expect(outcomes[2]?.artifacts).toEqual(good);
  expect(outcomes.map((event) => event.production)).toEqual([false, false, false]);
});

test("a failed rollback step is claimable again only after its pause; the rollback then completes", async () => {
  const { deploymentId, environment } = await startedDeployment(strategyOf(DeploymentStrategyKind.ALL_AT_ONCE));
  await runStep(environment);
  await deployer.rollbackDeployment({ ...rid(), deploymentId, reason: "bad build" });
  const restore = await claim(environment);
  expect(restore.step?.kind).toBe(StepKind.ROLLBACK);
  const lease = { deploymentId, stepIndex: restore.step?.index ?? 0, fencingToken: restore.fencingToken };
  const asked = Date.now();
  const failed = await executor.failStep({ ...rid(), lease, reason: "target unreachable" });
  const answered = Date.now();
  const step = failed.deployment?.steps[lease.stepIndex];
  expect([failed.deployment?.state, step?.state, step?.failures]).toEqual([
    DeploymentState.ROLLING_BACK,
    StepState.READY,
    1,
  ]);
  const retryAt = step?.availableAt ? timestampDate(step.availableAt).getTime() : 0;
  expect(retryAt).toBeGreaterThanOrEqual(asked + 5_000);
  expect(retryAt).toBeLessThanOrEqual(answered + 5_000);
  // Asked (and answered) before the pause ended: nothing to claim.
  const early = await executor.claimStep({
    ...rid(),
    executorId: "agent-1",
    environments: [environment],
    leaseSeconds: 30,
  });
  if (Date.now() < retryAt) expect(early.assignment).toBeUndefined();
  const retried = early.assignment ?? (await claim(environment));
  expect([retried.step?.index, retried.fencingToken]).toEqual([lease.stepIndex, lease.fencingToken + 1n]);
  // Its targets not reported under this lease, it is not done yet.
  expect(
    await preconditionRules(
      executor.completeStep({ ...rid(), lease: { ...lease, fencingToken: retried.fencingToken } }),
    ),
  ).toEqual(retried.step?.targetCiIds.map(() => "step.targets_unreported"));
  await perform(retried);
  await runStep(environment); // the verification after the restore
  expect((await stateOf(deploymentId))?.state).toBe(DeploymentState.ROLLED_BACK);
});

test("the service stopped mid-deployment and started again: the deployment completes, nothing doubled", async () => {
  const { deploymentId, environment } = await startedDeployment(
    strategyOf(DeploymentStrategyKind.ROLLING, { batchSize: 1 }),
  );
  await runStep(environment);
  await harness.service.stop();
  await harness.restart();
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
  executor = await harness.client("agent-1", ["executor"]);
  await runStep(environment);
  await runStep(environment);
  expect((await stateOf(deploymentId))?.state).toBe(DeploymentState.SUCCEEDED);
  // The restarted relay reconnects to the broker before it publishes: allow it more time.
  const outcomes = await outcomesOf(deploymentId, 2, 60_000);
  expect(outcomes.map((event) => event.$typeName)).toEqual([
    "rdm.deployment.v1.DeploymentStarted",
    "rdm.deployment.v1.DeploymentSucceeded",
  ]);
  const all = harness.published.get(deploymentId) ?? [];
  const ids = all.map((event) => (event.metadata as { eventId: string }).eventId);
  expect(new Set(ids).size).toBe(ids.length);
}, 120_000);
