// Commands that depend on what else runs in an environment, through gRPC on real PostgreSQL and
// Kafka: racing starts, a rollback of a superseded deployment, a blue/green plan made stale by
// another switch, hosts taken out or retired in the CMDB, an abandoned release, the outcome
// sequence held until its event commits, and
// last, the query tables these leave rebuilt from the event streams.
import { randomUUID } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { rebuildQueryTables } from "@rdm/command-handler";
import { EventStore } from "@rdm/eventstore";
import { errorDetails } from "@rdm/grpc";
import { CiLifecycleStatus } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ConfigurationItemRegisteredSchema,
  ConfigurationItemStatusChangedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  type DeployedArtifact,
  DeploymentStrategyKind,
  StepKind,
  TargetOutcome,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleaseAbandonedSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { repeatWhilePending, runBuiltCommand } from "@rdm/testkit";
import pg from "pg";
import { deploymentCodec } from "../src/api/aggregates.js";
import { isOutcome } from "../src/api/projection.js";
import type { DeploymentEvent } from "../src/domain/index.js";
import { deploymentQueryTables } from "../src/store/query-tables.js";
import {
  artifact,
  groups,
  Harness,
  preconditionRules,
  preconditionSubjects,
  rid,
  strategyOf,
  uniqueId,
  waitFor,
} from "./harness.js";

const harness = new Harness("deployment-turns");
type Client = Awaited<ReturnType<Harness["client"]>>;
let deployer: Client;
let executor: Client;
let pool: pg.Pool;

beforeAll(async () => {
  await harness.start("deployment_turns");
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
  executor = await harness.client("agent-1", ["executor"]);
  pool = new pg.Pool({ connectionString: harness.databaseUrl, max: 4 });
});
afterAll(async () => {
  await pool.end();
  await harness.stop();
});

const ALL_AT_ONCE = strategyOf(DeploymentStrategyKind.ALL_AT_ONCE);

async function newEnvironment(targetGroups = groups({ rest: [uniqueId("ci")] })) {
  const environment = uniqueId("env");
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name: environment, promotionRank: 1, targetGroups, executorLabels: [] },
  });
  return environment;
}

/**
 * A deployment of a fresh, approved release in its deployment phase with a verified artifact, once
 * its facts are consumed (its approval comes before its phase change: both are waited for).
 */
async function planned(environment: string, strategy = ALL_AT_ONCE, artifactName = "api") {
  const plan = await harness.plannedDeployment(deployer, strategy, environment, artifactName);
  await waitFor(
    async () =>
      (
        await pool.query(
          `SELECT 1 FROM gate_releases r, gate_artifacts a
           WHERE r.release_id = $1 AND r.approved AND r.phase = $3 AND a.artifact_id = $2 AND a.verified`,
          [plan.releaseId, plan.artifactId, ReleasePhase.DEPLOYMENT],
        )
      ).rowCount === 1,
    { timeoutMs: 30_000, description: "the release and artifact facts consumed" },
  );
  return plan;
}

/** The first claim in the environment finds nothing: the deployment is cancelled as it would begin, naming `rule`. */
async function cancelledAsItBegins(deploymentId: string, environment: string, rule: string) {
  const claimed = await executor.claimStep({
    ...rid(),
    executorId: "agent-1",
    environments: [environment],
    leaseSeconds: 30,
  });
  expect(claimed.assignment).toBeUndefined();
  const cancelled = (await deployer.getDeployment({ deploymentId })).deployment;
  expect([cancelled?.state, cancelled?.reason]).toEqual([DeploymentState.CANCELLED, expect.stringContaining(rule)]);
}

/** Claims the environment's next step and completes it, every target succeeding; the assignment. */
async function runStep(environment: string) {
  const { assignment } = await waitFor(
    async () => {
      const claimed = await executor.claimStep({
        ...rid(),
        executorId: "agent-1",
        environments: [environment],
        leaseSeconds: 30,
      });
      return claimed.assignment && claimed;
    },
    { timeoutMs: 15_000, description: `a step of ${environment}` },
  );
  const step = assignment?.step;
  const lease = {
    deploymentId: assignment?.deploymentId ?? "",
    stepIndex: step?.index ?? 0,
    fencingToken: assignment?.fencingToken ?? 0n,
  };
  for (const ciId of step?.targetCiIds ?? []) {
    await executor.reportTargetProgress({
      ...rid(),
      lease,
      ciId,
      outcome: TargetOutcome.SUCCEEDED,
      verifications: step?.kind === StepKind.VERIFY ? [{ check: "smoke", passed: true, detail: "" }] : [],
    });
  }
  await executor.completeStep({ ...rid(), lease });
  return assignment;
}

async function runToEnd(deploymentId: string, environment: string, end = DeploymentState.SUCCEEDED) {
  while ((await deployer.getDeployment({ deploymentId })).deployment?.state !== end) {
    await runStep(environment);
  }
}

test("of two deployments started at once in one environment, one starts and the other finds it busy", async () => {
  for (let round = 0; round < 3; round++) {
    const environment = await newEnvironment();
    const ids = [(await planned(environment)).deploymentId, (await planned(environment)).deploymentId];
    const results = await Promise.allSettled(
      ids.map((deploymentId) => deployer.startDeployment({ ...rid(), deploymentId })),
    );
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(await preconditionRules(Promise.reject(refused.reason))).toEqual(["gate.environment_busy"]);
  }
});

test("a succeeded deployment that a later one replaced cannot be rolled back; the later one can", async () => {
  const environment = await newEnvironment();
  const first = await planned(environment);
  await deployer.startDeployment({ ...rid(), deploymentId: first.deploymentId });
  await runToEnd(first.deploymentId, environment);
  const second = await planned(environment);
  await deployer.startDeployment({ ...rid(), deploymentId: second.deploymentId });
  await runToEnd(second.deploymentId, environment);

  const rollback = (deploymentId: string) =>
    deployer.rollbackDeployment({ ...rid(), deploymentId, reason: "backing out", fast: true });
  expect(await preconditionRules(rollback(first.deploymentId))).toEqual(["deployment.superseded"]);
  expect((await rollback(second.deploymentId)).deployment?.state).toBe(DeploymentState.ROLLING_BACK);
  // While the second one rolls back, nothing else may roll back or start there.
  const third = await planned(environment);
  expect(await preconditionRules(deployer.startDeployment({ ...rid(), deploymentId: third.deploymentId }))).toEqual([
    "gate.environment_busy",
  ]);
  expect(await preconditionRules(rollback(first.deploymentId))).toEqual(["gate.environment_busy"]);
});

test("a deployment of other artifacts since leaves one current: its back-out restores its artifacts only", async () => {
  const environment = await newEnvironment();
  const deployed = async (artifactName: string) => {
    const plan = await planned(environment, ALL_AT_ONCE, artifactName);
    await deployer.startDeployment({ ...rid(), deploymentId: plan.deploymentId });
    await runToEnd(plan.deploymentId, environment);
    return plan;
  };
  const [apiOne, apiTwo, worker] = [await deployed("api"), await deployed("api"), await deployed("worker")];
  const rollback = (deploymentId: string) =>
    deployer.rollbackDeployment({ ...rid(), deploymentId, reason: "backing out", fast: true });
  expect(await preconditionRules(rollback(apiOne.deploymentId))).toEqual(["deployment.superseded"]);
  const { deployment } = await rollback(apiTwo.deploymentId);
  // What it restores is api as it ran before it (worker was no part of its start).
  expect([deployment?.baselineArtifactNames, deployment?.baseline.map((a) => a.artifactId)]).toEqual([
    ["api"],
    [apiOne.artifactId],
  ]);
  // Its executor is told which names it restores: an api the deployment added on a target goes.
  const restoring = await runStep(environment);
  expect([restoring?.step?.kind, restoring?.restoredArtifactNames]).toEqual([StepKind.ROLLBACK, ["api"]]);
  await runToEnd(apiTwo.deploymentId, environment, DeploymentState.ROLLED_BACK);
  const after = (await deployer.listEnvironments({})).environments.find((e) => e.name === environment);
  expect(after?.baseline.map((a) => [a.name, a.artifactId]).sort()).toEqual(
    [
      ["api", apiOne.artifactId],
      ["worker", worker.artifactId],
    ].sort(),
  );
});

test("a plan that deploys to a host taken out of the environment since is refused at start; one made now deploys", async () => {
  const [kept, leaving] = [uniqueId("ci"), uniqueId("ci")];
  const environment = await newEnvironment(groups({ rest: [kept, leaving] }));
  const redefine = (ciIds: string[]) =>
    deployer.changeEnvironment({
      ...rid(),
      environment: { name: environment, promotionRank: 1, targetGroups: groups({ rest: ciIds }), executorLabels: [] },
      reason: "hosts moved",
    });
  const stale = await planned(environment);
  await redefine([kept]);
  const start = deployer.startDeployment({ ...rid(), deploymentId: stale.deploymentId });
  expect(await preconditionSubjects(start, "gate.plan_targets")).toEqual([environment]);
  const refused = errorDetails(await start.catch((e: unknown) => e));
  expect(refused.preconditionFailure?.violations.map((v) => v.type)).toEqual(["gate.plan_targets"]);
  expect(refused.preconditionFailure?.violations[0]?.description).toContain(leaving);
  const fresh = await planned(environment);
  await deployer.startDeployment({ ...rid(), deploymentId: fresh.deploymentId });
  await runToEnd(fresh.deploymentId, environment);
  const after = (await deployer.listEnvironments({})).environments.find((e) => e.name === environment);
  expect(after?.baseline.map((a) => [a.artifactId, a.targetCiIds])).toEqual([[fresh.artifactId, [kept]]]);

  // Taken out after the start, before the first step: cancelled as it would begin, saying why.
  await redefine([kept, leaving]);
  const late = await planned(environment);
  await deployer.startDeployment({ ...rid(), deploymentId: late.deploymentId });
  await redefine([kept]);
  await cancelledAsItBegins(late.deploymentId, environment, "gate.plan_targets");
});

test("a plan to a host the CMDB retired is refused at start; one retired after the start cancels it as it begins", async () => {
  const cmdb = (ciId: string, status: CiLifecycleStatus) =>
    harness.publish("configuration", ConfigurationItemRegisteredSchema, ciId, { ciId, name: ciId, status });
  const retire = (ciId: string) =>
    harness.publish("configuration", ConfigurationItemStatusChangedSchema, ciId, {
      ciId,
      from: CiLifecycleStatus.LIVE,
      to: CiLifecycleStatus.RETIRED,
    });
  // The environment names the host in capitals; the CMDB's events in lower case.
  const [kept, host] = [uniqueId("ci"), uniqueId("ci")];
  const environment = await newEnvironment(groups({ rest: [kept, host.toUpperCase()] }));
  await harness.handled(await cmdb(kept, CiLifecycleStatus.LIVE));
  await cmdb(host, CiLifecycleStatus.LIVE);
  await harness.handled(await retire(host));
  // A registration replayed after the retirement leaves the host retired.
  await harness.handled(await cmdb(host, CiLifecycleStatus.LIVE));
  const refused = errorDetails(
    await deployer
      .startDeployment({ ...rid(), deploymentId: (await planned(environment)).deploymentId })
      .catch((e: unknown) => e),
  );
  expect(refused.preconditionFailure?.violations.map((v) => [v.type, v.subject])).toEqual([
    ["gate.target_retired", environment],
  ]);
  expect(refused.preconditionFailure?.violations[0]?.description).toContain(`(${host.toUpperCase()})`);

  // Taken out of the environment, a plan made now deploys; retired after its start, it is
  // cancelled as it would begin, saying why.
  await deployer.changeEnvironment({
    ...rid(),
    environment: { name: environment, promotionRank: 1, targetGroups: groups({ rest: [kept] }), executorLabels: [] },
    reason: "host decommissioned",
  });
  const late = await planned(environment);
  await deployer.startDeployment({ ...rid(), deploymentId: late.deploymentId });
  await harness.handled(await retire(kept));
  await cancelledAsItBegins(late.deploymentId, environment, "gate.target_retired");
});

test("an environment whose baseline is past what one event holds still deploys: a start records its package's part", async () => {
  // Target ids as long as the CMDB allows: 2 × 70 artifacts on 20 targets make a baseline past 512 KiB.
  const hosts = Array.from({ length: 20 }, () => uniqueId("ci").padEnd(200, "x"));
  const environment = await newEnvironment(groups({ rest: hosts }));
  const deployedMany = async (count: number) => {
    const releaseId = randomUUID();
    await harness.releaseReady(releaseId);
    const artifacts = [];
    for (let i = 0; i < count; i++) {
      const [artifactId, name] = [randomUUID(), uniqueId("svc")];
      await harness.artifact(artifactId, "verified", "1.0.0", name);
      artifacts.push(artifact(artifactId, "1.0.0", name));
    }
    const { deployment } = await deployer.planDeployment({
      ...rid(),
      releaseId,
      environment,
      artifacts,
      strategy: ALL_AT_ONCE,
    });
    const deploymentId = deployment?.deploymentId ?? "";
    await waitFor(() => deployer.startDeployment({ ...rid(), deploymentId }), {
      timeoutMs: 30_000,
      description: "the gates met once the release and artifact facts are consumed",
    });
    await runToEnd(deploymentId, environment);
  };
  await deployedMany(70);
  await deployedMany(70);
  const listed = (await deployer.listEnvironments({})).environments.find((e) => e.name === environment);
  expect(listed?.baseline.reduce((pairs, a) => pairs + a.targetCiIds.length, 0)).toBe(2 * 70 * 20);

  // A start records what runs under its package's name (nothing: api is new there), not the 2,800 pairs.
  const api = await planned(environment);
  const { deployment } = await deployer.startDeployment({ ...rid(), deploymentId: api.deploymentId });
  expect([deployment?.state, deployment?.baselineArtifactNames, deployment?.baseline]).toEqual([
    DeploymentState.SCHEDULED,
    ["api"],
    [],
  ]);
  await runToEnd(api.deploymentId, environment);
});

test("a plan naming one artifact twice (two versions of api) is refused, naming the second", async () => {
  const environment = await newEnvironment();
  const refused = errorDetails(
    await deployer
      .planDeployment({
        ...rid(),
        releaseId: randomUUID(),
        environment,
        artifacts: [artifact(randomUUID(), "1.0.0"), artifact(randomUUID(), "2.0.0")],
        strategy: ALL_AT_ONCE,
      })
      .then(
        () => new Error("a plan naming api twice was accepted"),
        (e: unknown) => e,
      ),
  );
  expect([refused.code, refused.badRequest?.fieldViolations.map((v) => v.field)]).toEqual([
    status.INVALID_ARGUMENT,
    ["artifacts[1].name"],
  ]);
});

test("a blue/green plan made before another deployment switched colours is refused at start", async () => {
  const environment = await newEnvironment(groups({ blue: [uniqueId("blue")], green: [uniqueId("green")] }));
  const BLUE_GREEN = strategyOf(DeploymentStrategyKind.BLUE_GREEN);
  const first = await planned(environment, BLUE_GREEN);
  const second = await planned(environment, BLUE_GREEN); // planned while no colour is live
  await deployer.startDeployment({ ...rid(), deploymentId: first.deploymentId });
  await runToEnd(first.deploymentId, environment);
  const refusal = deployer.startDeployment({ ...rid(), deploymentId: second.deploymentId });
  expect(await preconditionRules(refusal)).toEqual(["deployment.colour_stale"]);
  // Planned again against the live colour, it deploys to the idle one.
  const again = await planned(environment, BLUE_GREEN);
  await deployer.startDeployment({ ...rid(), deploymentId: again.deploymentId });
  const live = (await deployer.listEnvironments({})).environments.find((e) => e.name === environment)?.liveColour;
  const step = (await runStep(environment))?.step;
  expect([live, step?.colour]).toEqual(["blue", "green"]);
});

test("a blue/green plan whose idle host was moved into the live colour since is refused at start", async () => {
  const [blue, green, moved] = [uniqueId("blue"), uniqueId("green"), uniqueId("green")];
  const environment = await newEnvironment(groups({ blue: [blue], green: [green, moved] }));
  const BLUE_GREEN = strategyOf(DeploymentStrategyKind.BLUE_GREEN);
  const first = await planned(environment, BLUE_GREEN);
  await deployer.startDeployment({ ...rid(), deploymentId: first.deploymentId });
  await runToEnd(first.deploymentId, environment);
  const second = await planned(environment, BLUE_GREEN); // to green, blue being live
  await deployer.changeEnvironment({
    ...rid(),
    environment: {
      name: environment,
      promotionRank: 1,
      targetGroups: groups({ blue: [blue, moved], green: [green] }),
      executorLabels: [],
    },
    reason: "host moved to blue",
  });
  const start = deployer.startDeployment({ ...rid(), deploymentId: second.deploymentId });
  expect(await preconditionSubjects(start, "gate.plan_targets")).toEqual([environment]);
});

test("ListDeployments pages newest first; a deployment planned between pages neither repeats nor shifts them", async () => {
  const environment = await newEnvironment();
  const plans = [];
  for (let i = 0; i < 3; i++) plans.push(await planned(environment));
  const plannedIds = plans.map((p) => p.deploymentId);
  const first = await deployer.listDeployments({ environment, pageSize: 1 });
  const later = (await planned(environment)).deploymentId;
  const seen = first.deployments.map((d) => d.deploymentId);
  for (let token = first.nextPageToken; token; ) {
    const page = await deployer.listDeployments({ environment, pageSize: 1, pageToken: token });
    seen.push(...page.deployments.map((d) => d.deploymentId));
    token = page.nextPageToken;
  }
  const all = (await deployer.listDeployments({ environment })).deployments.map((d) => d.deploymentId);
  expect([...all].sort()).toEqual([...plannedIds, later].sort());
  expect(seen).toEqual(all.filter((id) => id !== later));
  // Filtered by release, its id in either case (a UUID, as the request takes it).
  for (const releaseId of [plans[1]?.releaseId ?? "", plans[1]?.releaseId.toUpperCase() ?? ""]) {
    const byRelease = await deployer.listDeployments({ releaseId });
    expect(byRelease.deployments.map((d) => d.deploymentId)).toEqual([plannedIds[1]]);
  }
  const forged = errorDetails(
    await deployer.listDeployments({ environment, pageToken: "2" }).then(
      () => new Error("a forged page token was accepted"),
      (e: unknown) => e,
    ),
  );
  expect([forged.code, forged.badRequest?.fieldViolations[0]?.field]).toEqual([status.INVALID_ARGUMENT, "page_token"]);
});

test("a ListDeployments page token pages on with the filters that made it, at any page size; other filters or lists refuse it", async () => {
  const environment = await newEnvironment();
  for (let i = 0; i < 3; i++) await planned(environment);
  const ids = (page: { deployments: { deploymentId: string }[] }) => page.deployments.map((d) => d.deploymentId);
  const states = [DeploymentState.PLANNED, DeploymentState.SCHEDULED];
  const all = ids(await deployer.listDeployments({ environment }));
  const first = await deployer.listDeployments({ environment, states, pageSize: 1 });
  // The same filters, the states in another order, and a larger page.
  const rest = await deployer.listDeployments({
    environment,
    states: [...states].reverse(),
    pageSize: 10,
    pageToken: first.nextPageToken,
  });
  expect(rest.nextPageToken).toBe("");
  expect([...ids(first), ...ids(rest)]).toEqual(all);
  expect(all).toHaveLength(3);

  const other = await newEnvironment(); // and so at least two environments: a page of one has a token
  const environments = await deployer.listEnvironments({ pageSize: 1 });
  const refusals = [
    () => deployer.listDeployments({ environment, pageToken: first.nextPageToken }),
    () => deployer.listDeployments({ environment, states: [DeploymentState.PLANNED], pageToken: first.nextPageToken }),
    () => deployer.listDeployments({ environment: other, states, pageToken: first.nextPageToken }),
    // Another list's token, both ways.
    () => deployer.listDeployments({ pageToken: environments.nextPageToken }),
    () => deployer.listEnvironments({ pageToken: first.nextPageToken }),
  ];
  for (const [i, call] of refusals.entries()) {
    const refused = errorDetails(
      await call().then(
        () => new Error(`refusal ${i}: the page token was accepted`),
        (e: unknown) => e,
      ),
    );
    expect([refused.code, refused.badRequest?.fieldViolations[0]]).toEqual([
      status.INVALID_ARGUMENT,
      expect.objectContaining({
        field: "page_token",
        description: "page_token does not belong to this list and filters",
      }),
    ]);
  }
});

test("ListEnvironments pages in promotion order; an environment registered between pages neither repeats nor shifts them", async () => {
  const define = (name: string, promotionRank: number) => ({
    ...rid(),
    environment: { name, promotionRank, targetGroups: groups({ rest: [uniqueId("ci")] }), executorLabels: [] },
  });
  // Last in the order (ranks above every other test's), two of them on one rank: by name.
  const late = [uniqueId("env-z"), uniqueId("env-y"), uniqueId("env-x")];
  await deployer.registerEnvironment(define(late[0] as string, 990));
  await deployer.registerEnvironment(define(late[1] as string, 990));
  await deployer.registerEnvironment(define(late[2] as string, 991));
  const first = await deployer.listEnvironments({ pageSize: 2 });
  const early = uniqueId("a"); // rank 1 and a name before every other test's: before the first page ends
  await deployer.registerEnvironment(define(early, 1));
  const seen = first.environments.map((e) => e.name);
  const sizes = [first.environments.length];
  for (let token = first.nextPageToken; token; ) {
    const page = await deployer.listEnvironments({ pageSize: 2, pageToken: token });
    seen.push(...page.environments.map((e) => e.name));
    sizes.push(page.environments.length);
    token = page.nextPageToken;
  }
  const all = (await deployer.listEnvironments({})).environments;
  expect(all.map((e) => e.name)).toContain(early);
  expect(seen).toEqual(all.map((e) => e.name).filter((name) => name !== early));
  expect(seen.slice(-3)).toEqual([...late.slice(0, 2)].sort().concat(late[2] as string));
  expect(Math.max(...sizes)).toBe(2);
  // A page holds what the whole list holds for those environments.
  const lastPage = await deployer.listEnvironments({ pageSize: 100, pageToken: first.nextPageToken });
  expect(lastPage.environments).toEqual(all.slice(all.findIndex((e) => e.name === lastPage.environments[0]?.name)));
  expect(lastPage.nextPageToken).toBe("");
  for (const request of [{ pageToken: "2" }, { pageSize: 101 }]) {
    const refused = errorDetails(
      await deployer.listEnvironments(request).then(
        () => new Error(`${JSON.stringify(request)} was accepted`),
        (e: unknown) => e,
      ),
    );
    expect(refused.code).toBe(status.INVALID_ARGUMENT);
  }
});

test("a ListEnvironments page holds fewer environments when they would pass 3 MiB together", async () => {
  // Seventeen environments of about 390 KB each (2,000 CI ids of 190 characters), last in the
  // order: wherever the pages of 100 fall, one must be cut short by bytes (eight fit in 3 MiB).
  const big = Array.from({ length: 17 }, () => uniqueId("env-big"));
  for (const name of big) {
    const ciIds = Array.from({ length: 2000 }, (_, i) => `${name}-${i}-`.padEnd(190, "x"));
    await deployer.registerEnvironment({
      ...rid(),
      environment: { name, promotionRank: 995, targetGroups: groups({ rest: ciIds }), executorLabels: [] },
    });
  }
  const pages: string[][] = [];
  let token = "";
  do {
    const page = await deployer.listEnvironments({ pageSize: 100, pageToken: token });
    pages.push(page.environments.map((e) => e.name));
    token = page.nextPageToken;
  } while (token);
  const bigOnPage = pages.map((names) => names.filter((name) => big.includes(name)).length);
  expect([Math.max(...bigOnPage), bigOnPage.reduce((a, b) => a + b)]).toEqual([8, 17]);
  expect(pages.slice(0, -1).some((names) => names.length < 100)).toBe(true);
  // Each environment once, these last, by name (the whole list in one answer would now pass a
  // client's 4 MiB: the reason to page).
  const listed = pages.flat();
  expect(new Set(listed).size).toBe(listed.length);
  expect(listed.slice(-17)).toEqual([...big].sort());
});

test("a promotion order that would run in a circle, or from nowhere, is refused, whichever definition closes it", async () => {
  const [a, b, c] = [uniqueId("env-a"), uniqueId("env-b"), uniqueId("env-c")];
  const define = (name: string, promotesFrom: string) => ({
    ...rid(),
    environment: {
      name,
      promotionRank: 1,
      promotesFrom,
      targetGroups: groups({ rest: [uniqueId("ci")] }),
      executorLabels: [],
    },
  });
  // The order is registered from its start: one following an environment not registered is refused.
  expect(await preconditionRules(deployer.registerEnvironment(define(b, a)))).toEqual([
    "environment.promotes_from_unknown",
  ]);
  await deployer.registerEnvironment(define(a, ""));
  await deployer.registerEnvironment(define(b, a));
  await deployer.registerEnvironment(define(c, b));
  expect(await preconditionRules(deployer.changeEnvironment({ ...define(a, c), reason: "loop" }))).toEqual([
    "environment.promotion_cycle",
  ]);
  // Two changes, each fine alone, that together would close one, at once: one is taken.
  const [d, e] = [uniqueId("env-d"), uniqueId("env-e")];
  await deployer.registerEnvironment(define(d, ""));
  await deployer.registerEnvironment(define(e, ""));
  const both = await Promise.allSettled([
    deployer.changeEnvironment({ ...define(d, e), reason: "d after e" }),
    deployer.changeEnvironment({ ...define(e, d), reason: "e after d" }),
  ]);
  expect(both.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
  const refused = both.find((r) => r.status === "rejected") as PromiseRejectedResult;
  expect(await preconditionRules(Promise.reject(refused.reason))).toEqual(["environment.promotion_cycle"]);
});

test("a host is a target of one environment: another naming it, in any case, is refused; of two at once, one is taken", async () => {
  const host = randomUUID();
  const define = (name: string, ciId: string) => ({
    ...rid(),
    environment: { name, promotionRank: 1, targetGroups: groups({ rest: [ciId] }), executorLabels: [] },
  });
  const first = uniqueId("env");
  await deployer.registerEnvironment(define(first, host));
  expect(await preconditionRules(deployer.registerEnvironment(define(uniqueId("env"), host.toUpperCase())))).toEqual([
    "environment.target_elsewhere",
  ]);
  // Its own environment keeps it when changed.
  await deployer.changeEnvironment({ ...define(first, host), reason: "same hosts" });
  // Eight environments registered at once, each naming the same new host: one has it.
  const shared = randomUUID();
  const all = await Promise.allSettled(
    Array.from({ length: 8 }, () => deployer.registerEnvironment(define(uniqueId("env"), shared))),
  );
  expect(all.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  for (const refused of all.filter((r): r is PromiseRejectedResult => r.status === "rejected"))
    expect(await preconditionRules(Promise.reject(refused.reason))).toEqual(["environment.target_elsewhere"]);
});

test("an abandoned release's deployments not begun are cancelled with its reason; a running one is left", async () => {
  const [planning, running, scheduled] = [await newEnvironment(), await newEnvironment(), await newEnvironment()];
  const first = await planned(planning);
  // The same release and package planned in the two other environments.
  const { deployment } = await deployer.getDeployment({ deploymentId: first.deploymentId });
  const planAgain = async (environment: string) =>
    (
      await deployer.planDeployment({
        ...rid(),
        releaseId: first.releaseId,
        environment,
        artifacts: deployment?.artifacts ?? [],
        strategy: ALL_AT_ONCE,
      })
    ).deployment?.deploymentId as string;
  const [inProgress, waiting] = [await planAgain(running), await planAgain(scheduled)];
  await deployer.startDeployment({ ...rid(), deploymentId: inProgress });
  await runStep(running);
  await deployer.startDeployment({ ...rid(), deploymentId: waiting });
  const stateOf = async (deploymentId: string) => (await deployer.getDeployment({ deploymentId })).deployment;
  expect((await stateOf(inProgress))?.state).toBe(DeploymentState.IN_PROGRESS);
  expect((await stateOf(waiting))?.state).toBe(DeploymentState.SCHEDULED);
  const other = await planned(planning);

  const abandoned = await harness.publish("release", ReleaseAbandonedSchema, first.releaseId, {
    releaseId: first.releaseId,
    phase: ReleasePhase.DEPLOYMENT,
    reason: "cancelled by the business",
  });
  await harness.handled(abandoned);
  const reason = `release ${first.releaseId} was abandoned: cancelled by the business`;
  for (const deploymentId of [first.deploymentId, waiting])
    expect(await stateOf(deploymentId)).toMatchObject({ state: DeploymentState.CANCELLED, reason });
  expect((await stateOf(inProgress))?.state).toBe(DeploymentState.IN_PROGRESS);
  expect((await stateOf(other.deploymentId))?.state).toBe(DeploymentState.PLANNED);
  // Nothing of the release starts any more, nor is planned.
  expect(await preconditionRules(deployer.startDeployment({ ...rid(), deploymentId: first.deploymentId }))).toEqual([
    "deployment.state",
  ]);
  expect(await preconditionRules(planAgain(planning))).toEqual(["gate.release_abandoned"]);
});

test("an outcome's environment sequence stays locked until its event commits", async () => {
  const environment = await newEnvironment();
  const { deploymentId } = await planned(environment);
  await deployer.startDeployment({ ...rid(), deploymentId });
  // Hold the deployment's stream row: the first claim (its begin, DeploymentStarted, an outcome)
  // decides, takes its sequence, then waits to append.
  const blocker = await pool.connect();
  try {
    await blocker.query("BEGIN");
    await blocker.query("SELECT 1 FROM streams WHERE stream_id = $1 FOR UPDATE", [deploymentId]);
    const claim = executor.claimStep({
      ...rid(),
      executorId: "agent-1",
      environments: [environment],
      leaseSeconds: 30,
    });
    await waitFor(
      async () =>
        (
          await pool.query(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1",
            [(blocker as unknown as { processID: number }).processID],
          )
        ).rowCount,
      { timeoutMs: 10_000, description: "the claim waiting to append" },
    );
    const probe = await pool.connect();
    try {
      await probe.query("BEGIN");
      const locked = await probe
        .query("SELECT 1 FROM environment_outcomes WHERE name = $1 FOR UPDATE NOWAIT", [environment])
        .then(
          () => "free",
          (error: { code?: string }) => error.code,
        );
      expect(locked).toBe("55P03"); // lock_not_available
    } finally {
      await probe.query("ROLLBACK");
      probe.release();
    }
    await blocker.query("ROLLBACK");
    expect((await claim).assignment?.deploymentId).toBe(deploymentId);
    expect((await deployer.getDeployment({ deploymentId })).deployment?.state).toBe(DeploymentState.IN_PROGRESS);
  } finally {
    blocker.release();
  }
});

/**
 * The query tables: every column of every row, in key order; bytes as base64, which jest compares
 * at once (a Buffer, byte by byte: seconds for the big environments' definitions).
 */
async function queryTableRows() {
  const rows = async (sql: string) =>
    (await pool.query<Record<string, unknown>>(sql)).rows.map((row) =>
      Object.fromEntries(
        Object.entries(row).map(([column, value]) => [
          column,
          Buffer.isBuffer(value) ? value.toString("base64") : value,
        ]),
      ),
    );
  return {
    environments: await rows("SELECT * FROM environments ORDER BY name"),
    outcomes: await rows("SELECT * FROM environment_outcomes ORDER BY name"),
    deployments: await rows("SELECT * FROM deployments ORDER BY deployment_id"),
  };
}

/** The sequences each environment's outcome events carry, in ascending order. */
async function outcomeSequences() {
  const recorded = await pool.query("SELECT type, data FROM events WHERE stream_type = 'deployment'");
  const numbered = new Map<string, number[]>();
  for (const event of recorded.rows.map((row) => deploymentCodec.decode(row) as DeploymentEvent).filter(isOutcome))
    numbered.set(event.environment, [...(numbered.get(event.environment) ?? []), Number(event.environmentSequence)]);
  return [...numbered].map(([environment, sequences]) => ({ environment, sequences: sequences.sort((a, b) => a - b) }));
}

/** A fresh environment, where a release whose facts were consumed is deployed to the end. */
async function deployedToNewEnvironment(release: { releaseId: string; artifacts: DeployedArtifact[] }) {
  const environment = await newEnvironment();
  const { deployment } = await deployer.planDeployment({ ...rid(), ...release, environment, strategy: ALL_AT_ONCE });
  const deploymentId = deployment?.deploymentId as string;
  await deployer.startDeployment({ ...rid(), deploymentId });
  await runToEnd(deploymentId, environment);
  return deploymentId;
}

// Reads every row the tests above wrote: baselines, a live colour, rollbacks, big environments.
test("the query tables rebuilt from the event streams equal the live ones, also while commands run", async () => {
  // Deployments that ran in another order than planned: the rebuild writes them by their first
  // event, yet the environment runs what the later outcome left there.
  const reordered = await newEnvironment();
  const [earlier, later] = [await planned(reordered), await planned(reordered)];
  for (const { deploymentId } of [later, earlier]) {
    await deployer.startDeployment({ ...rid(), deploymentId });
    await runToEnd(deploymentId, reordered);
  }
  // A blue/green deployment, then one of another strategy: the colour stays the first one's, the
  // baseline becomes the second's (a rebuild takes each from its own latest outcome).
  const switched = await newEnvironment(groups({ blue: [uniqueId("blue")], green: [uniqueId("green")] }));
  const coloured = await planned(switched, strategyOf(DeploymentStrategyKind.BLUE_GREEN));
  await deployer.startDeployment({ ...rid(), deploymentId: coloured.deploymentId });
  await runToEnd(coloured.deploymentId, switched);
  const uncoloured = await planned(switched);
  await deployer.startDeployment({ ...rid(), deploymentId: uncoloured.deploymentId });
  await runToEnd(uncoloured.deploymentId, switched);
  const live = await queryTableRows();
  expect(live.outcomes.find((row) => row.name === switched)).toMatchObject({
    live_colour: "blue",
    baseline_deployment_id: uncoloured.deploymentId,
  });
  expect(live.outcomes.find((row) => row.name === reordered)?.baseline_deployment_id).toBe(earlier.deploymentId);
  expect(live.deployments.length).toBeGreaterThan(15);
  expect(live.outcomes.filter((row) => row.baseline_deployment_id !== "").length).toBeGreaterThan(1);
  expect(live.outcomes.map((row) => row.live_colour)).toContain("blue");
  const counts = await rebuildQueryTables(pool, new EventStore(pool), deploymentQueryTables);
  expect(counts).toEqual({ environment: live.environments.length, deployment: live.deployments.length });
  expect(await queryTableRows()).toEqual(live);

  // The operator's command, while environments are registered and deployments run to their end
  // there until it ends: each command's rows are written before the rebuild locks the tables (and
  // rebuilt from its events) or after it. One release, its facts consumed, deploys everywhere.
  const { releaseId, deploymentId: first } = await planned(await newEnvironment());
  const release = {
    releaseId,
    artifacts: (await deployer.getDeployment({ deploymentId: first })).deployment?.artifacts ?? [],
  };
  const cli = runBuiltCommand(new URL("../dist/rebuild-main.js", import.meta.url), harness.databaseUrl);
  const ids: string[] = [];
  const { stdout } = await repeatWhilePending(cli, async () => {
    ids.push(...(await Promise.all([1, 2, 3].map(() => deployedToNewEnvironment(release)))));
  });
  expect(stdout).toMatch(
    /^deployment rebuild-tables: rebuilt environments, environment_outcomes, deployments from \d+ environment, \d+ deployment streams\n$/,
  );
  const after = await queryTableRows();
  const succeeded = after.deployments.filter((row) => row.state === DeploymentState.SUCCEEDED);
  expect(succeeded.map((row) => row.deployment_id)).toEqual(expect.arrayContaining(ids));
  await rebuildQueryTables(pool, new EventStore(pool), deploymentQueryTables);
  expect(await queryTableRows()).toEqual(after);
  // Nor did an environment hand out an outcome sequence twice or skip one.
  for (const { environment, sequences } of await outcomeSequences())
    expect({ environment, sequences }).toEqual({ environment, sequences: sequences.map((_, i) => i + 1) });
});
