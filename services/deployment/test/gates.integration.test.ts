// The start gates through gRPC: every refusal lists every unmet condition, from the service's
// read models of the release, change and configuration topics (published here as those
// services would), its environments and its own deployments.
import { randomUUID } from "node:crypto";
import { fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { errorDetails } from "@rdm/grpc";
import { ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  DeploymentScheduledSchema,
  DeploymentStrategyKind,
  StepKind,
  TargetOutcome,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  ReleaseApprovalRejectedSchema,
  ReleasePhaseAdvancedSchema,
  ReleaseRegisteredSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import {
  artifact,
  groups,
  Harness,
  preconditionRules,
  preconditionSubjects,
  refusedWith,
  rid,
  strategyOf,
  uniqueId,
  waitFor,
} from "./harness.js";

const harness = new Harness("deployment-gates");
type Client = Awaited<ReturnType<Harness["client"]>>;
let deployer: Client;

beforeAll(async () => {
  await harness.start("deployment_gates");
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
});
afterAll(() => harness.stop());

const ALL_AT_ONCE = strategyOf(DeploymentStrategyKind.ALL_AT_ONCE);

async function environment(
  options: { promotesFrom?: string; protection?: { approvalGroup: string; quorum: number } } = {},
) {
  const name = uniqueId("env");
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name, promotionRank: 1, targetGroups: groups({ rest: [uniqueId("ci")] }), ...options },
  });
  return name;
}

async function plan(
  env: string,
  options: { releaseId?: string; artifactId?: string; changes?: string[]; window?: { start: Date; end: Date } } = {},
) {
  const window = options.window;
  const { deployment } = await deployer.planDeployment({
    ...rid(),
    releaseId: options.releaseId ?? randomUUID(),
    environment: env,
    artifacts: [artifact(options.artifactId ?? randomUUID())],
    strategy: ALL_AT_ONCE,
    linkedChangeIds: options.changes ?? [],
    ...(window && { window: { start: timestampFromDate(window.start), end: timestampFromDate(window.end) } }),
  });
  return deployment?.deploymentId as string;
}

/** Polls until the refusal lists exactly `expected` (the consumers catch up meanwhile). */
const refusesWith = (deploymentId: string, expected: string[], client = deployer, override = "") =>
  waitFor(
    async () => {
      const rules = await preconditionRules(
        client.startDeployment({ ...rid(), deploymentId, freezeOverrideJustification: override }),
      );
      return JSON.stringify(rules.sort()) === JSON.stringify([...expected].sort()) ? rules : undefined;
    },
    { timeoutMs: 30_000, description: `refusal ${expected.join(", ")}` },
  );

const startsOnceReady = (deploymentId: string, client = deployer, override = "") =>
  waitFor(() => client.startDeployment({ ...rid(), deploymentId, freezeOverrideJustification: override }), {
    timeoutMs: 30_000,
    description: "the start once the facts arrived",
  });

test("nothing known yet: release, artifact and change gates all listed", async () => {
  const env = await environment();
  const changeId = randomUUID();
  // Named twice, in two cases: one change, one link.
  const deploymentId = await plan(env, { changes: [changeId, changeId.toUpperCase()] });
  const { deployment } = await deployer.getDeployment({ deploymentId });
  expect(deployment?.linkedChangeIds).toEqual([changeId]);
  await refusesWith(deploymentId, ["gate.release_known", "gate.change_known", "gate.artifact_known"]);
});

test("a change the plan names that the release does not list is refused, and covers nothing", async () => {
  const env = await environment();
  const [releaseId, otherRelease, artifactId, changeId] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  await harness.releaseReady(releaseId, { covered: false });
  await harness.releaseReady(otherRelease, { covered: false });
  await harness.artifact(artifactId);
  await Promise.all([harness.change(changeId), harness.linkChange(otherRelease, changeId)]);
  const deploymentId = await plan(env, { releaseId, artifactId, changes: [changeId] });
  // Refused with the change's and the release's facts all heard of.
  await refusesWith(deploymentId, ["gate.change_linked", "gate.change_required"]);
  const refused = errorDetails(await deployer.startDeployment({ ...rid(), deploymentId }).catch((e: unknown) => e));
  expect(refused.preconditionFailure?.violations.map((v) => [v.type, v.subject])).toEqual([
    ["gate.change_linked", changeId],
    ["gate.change_required", env],
  ]);
  expect(refused.preconditionFailure?.violations[0]?.description).toContain(releaseId);
  // Linked to this release too, it covers the deployment.
  await harness.linkChange(releaseId, changeId);
  expect((await startsOnceReady(deploymentId)).deployment?.state).toBe(DeploymentState.SCHEDULED);
});

test("release not approved, quarantined artifact, frozen environment: each listed, then met", async () => {
  const env = await environment();
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  await harness.artifact(artifactId, "quarantined");
  await harness.releaseReady(randomUUID());
  // In its deployment phase (so approved as its model asked), then an approval rejected.
  await harness.publish("release", ReleasePhaseAdvancedSchema, releaseId, {
    releaseId,
    toPhase: ReleasePhase.DEPLOYMENT,
  });
  await harness.publish("release", ReleaseApprovalRejectedSchema, releaseId, { releaseId });
  const manager = await harness.client("rm", ["release-manager"]);
  await manager.setEnvironmentFreeze({ ...rid(), environment: env, frozen: true, reason: "quarter end" });
  const deploymentId = await plan(env, { releaseId, artifactId });
  // Nor is it linked to a change yet, which the environment (production) needs.
  await refusesWith(deploymentId, [
    "gate.release_approved",
    "gate.change_required",
    "gate.artifact_quarantined",
    "gate.environment_frozen",
  ]);

  await manager.setEnvironmentFreeze({ ...rid(), environment: env, frozen: false, reason: "" });
  await harness.releaseReady(releaseId);
  await refusesWith(deploymentId, ["gate.artifact_quarantined"]);
});

test("CheckDeploymentGates lists what a start would refuse and records nothing; ready once a start would pass", async () => {
  const env = await environment();
  const [releaseId, artifactId, changeId] = [randomUUID(), randomUUID(), randomUUID()];
  await harness.releaseReady(releaseId);
  await harness.artifact(artifactId);
  await harness.change(changeId, ChangeType.EMERGENCY);
  await harness.linkChange(releaseId, changeId);
  const manager = await harness.client("cm", ["change-manager"]);
  const viewer = await harness.client("vic", ["viewer"]);
  await manager.setEnvironmentFreeze({ ...rid(), environment: env, frozen: true, reason: "peak" });
  const deploymentId = await plan(env, { releaseId, artifactId, changes: [changeId] });
  const check = (client: Client, override = "") =>
    client.checkDeploymentGates({ deploymentId, freezeOverrideJustification: override });
  const rulesOf = (answer: Awaited<ReturnType<typeof check>>) => answer.violations.map((v) => v.rule);
  const frozen = await waitFor(
    async () => {
      const answer = await check(viewer);
      return JSON.stringify(rulesOf(answer)) === JSON.stringify(["gate.environment_frozen"]) ? answer : undefined;
    },
    { timeoutMs: 30_000, description: "every gate but the freeze met" },
  );
  expect([frozen.ready, frozen.callerMayStart]).toEqual([false, false]);
  // The same conditions as the start's refusal, word for word.
  const refused = errorDetails(await deployer.startDeployment({ ...rid(), deploymentId }).catch((e: unknown) => e));
  expect(frozen.violations.map((v) => [v.rule, v.subject, v.description])).toEqual(
    refused.preconditionFailure?.violations.map((v) => [v.type, v.subject, v.description]),
  );
  // The deployer's justification overrides nothing; a change-manager's would: ready, begins now.
  expect(rulesOf(await check(deployer, "payments down"))).toEqual(["gate.environment_frozen"]);
  const before = Date.now();
  const overridden = await check(manager, "payments down, fix INC-42");
  expect([overridden.ready, overridden.violations, overridden.callerMayStart]).toEqual([true, [], true]);
  const begins = Number(overridden.beginsAt?.seconds) * 1000;
  expect(begins).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
  expect(begins).toBeLessThanOrEqual(Date.now());
  // Nothing recorded: the deployment is as planned.
  expect((await deployer.getDeployment({ deploymentId })).deployment).toMatchObject({
    state: DeploymentState.PLANNED,
    version: 1n,
  });
  // Started, a start would be refused for its state; an unknown deployment is NOT_FOUND.
  await manager.startDeployment({ ...rid(), deploymentId, freezeOverrideJustification: "payments down, fix INC-42" });
  const started = await check(viewer);
  expect([rulesOf(started), started.ready, started.beginsAt]).toEqual([["deployment.state"], false, undefined]);
  const unknown = viewer.checkDeploymentGates({ deploymentId: randomUUID() });
  expect(await refusedWith(unknown, status.NOT_FOUND)).toContain("no deployment");
});

test("a plan whose window is over is refused; once a planned window ends, the check says so and gives no begin", async () => {
  const env = await environment();
  const at = (seconds: number) => new Date(Date.now() + seconds * 1_000);
  const over = await deployer
    .planDeployment({
      ...rid(),
      releaseId: randomUUID(),
      environment: env,
      artifacts: [artifact(randomUUID())],
      strategy: ALL_AT_ONCE,
      window: { start: timestampFromDate(at(-7_200)), end: timestampFromDate(at(-3_600)) },
    })
    .catch((error: unknown) => error);
  expect(errorDetails(over).preconditionFailure?.violations.map((v) => v.type)).toEqual(["deployment.window_passed"]);
  // A window that ends a few seconds after the plan (enough for a busy machine to plan in it).
  const deploymentId = await plan(env, { window: { start: at(-60), end: at(8) } });
  const passed = await waitFor(
    async () => {
      const answer = await deployer.checkDeploymentGates({ deploymentId });
      return answer.violations.some((v) => v.rule === "deployment.window_passed") ? answer : undefined;
    },
    { timeoutMs: 30_000, description: "the window over" },
  );
  expect([passed.ready, passed.beginsAt]).toEqual([false, undefined]);
  expect(await preconditionRules(deployer.startDeployment({ ...rid(), deploymentId }))).toContain(
    "deployment.window_passed",
  );
});

test("an artifact planned under another name or version than the DML registered is refused at the start", async () => {
  const env = await environment();
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  await harness.releaseReady(releaseId);
  await harness.artifact(artifactId, "verified", "2.0.0");
  const deploymentId = await plan(env, { releaseId, artifactId });
  await refusesWith(deploymentId, ["gate.artifact_identity"]);
  const refused = errorDetails(
    await deployer.startDeployment({ ...rid(), deploymentId }).then(
      () => new Error("started"),
      (error: unknown) => error,
    ),
  );
  expect(refused.preconditionFailure?.violations[0]?.description).toBe(
    "the plan names it api@1.0.0; the DML registered api@2.0.0",
  );
});

test("a release whose model asks for no approval is approved once in its deployment phase", async () => {
  const env = await environment();
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  await harness.artifact(artifactId);
  await harness.publish("release", ReleaseRegisteredSchema, releaseId, { releaseId, phase: ReleasePhase.REGISTRATION });
  const deploymentId = await plan(env, { releaseId, artifactId });
  await refusesWith(deploymentId, ["gate.release_approved", "gate.release_phase", "gate.change_required"]);
  await harness.publish("release", ReleasePhaseAdvancedSchema, releaseId, {
    releaseId,
    fromPhase: ReleasePhase.BUILD_AND_TEST,
    toPhase: ReleasePhase.DEPLOYMENT,
  });
  await harness.coveredByChange(releaseId);
  expect((await startsOnceReady(deploymentId)).deployment?.state).toBe(DeploymentState.SCHEDULED);
});

test("a freeze is overridden only by a change-manager with a justification and an emergency change", async () => {
  const env = await environment();
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  const changeId = randomUUID();
  await harness.releaseReady(releaseId);
  await harness.artifact(artifactId);
  await harness.change(changeId, ChangeType.EMERGENCY);
  await harness.linkChange(releaseId, changeId);
  const manager = await harness.client("cm", ["change-manager"]);
  await manager.setEnvironmentFreeze({ ...rid(), environment: env, frozen: true, reason: "peak" });
  const deploymentId = await plan(env, { releaseId, artifactId, changes: [changeId] });
  // The deployer's justification is not enough: only a change-manager overrides.
  await refusesWith(deploymentId, ["gate.environment_frozen"], deployer, "payments down");
  const { deployment } = await startsOnceReady(deploymentId, manager, "payments down, fix INC-42");
  expect(deployment?.state).toBe(DeploymentState.SCHEDULED);
});

test("change-calendar freeze windows: by environment or target CI; lifted, they stop; an emergency override records them", async () => {
  const ciId = uniqueId("ci");
  const env = uniqueId("env");
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name: env, promotionRank: 1, targetGroups: groups({ rest: [ciId] }) },
  });
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  const changeId = randomUUID();
  await harness.releaseReady(releaseId);
  await harness.artifact(artifactId);
  await harness.change(changeId, ChangeType.EMERGENCY);
  await harness.linkChange(releaseId, changeId);
  // Consumed before the start, which would otherwise go through ahead of them.
  const byEnvironment = await harness.freezeWindow({ environments: [env] }, { consumed: true });
  const byTarget = await harness.freezeWindow({ ciIds: [ciId] }, { consumed: true });
  // Neither applies here: another environment's, and one over already.
  await harness.freezeWindow({ environments: [uniqueId("env")] });
  await harness.freezeWindow({ all: true }, { hours: -3 });
  const deploymentId = await plan(env, { releaseId, artifactId, changes: [changeId] });
  const windowsInForce = (expected: string[]) =>
    waitFor(
      async () => {
        const start = deployer.startDeployment({ ...rid(), deploymentId });
        const subjects = (await preconditionSubjects(start, "gate.freeze_window")).sort();
        return JSON.stringify(subjects) === JSON.stringify([...expected].sort()) ? subjects : undefined;
      },
      { timeoutMs: 30_000, description: `freeze windows in force: ${expected.join(", ")}` },
    );
  await windowsInForce([byEnvironment, byTarget]);

  // Lifted, then its declaration delivered again (a replay, on the same partition, consumed after
  // the lift): it stays lifted.
  await harness.liftFreezeWindow(byEnvironment);
  await harness.freezeWindow({ environments: [env] }, { id: byEnvironment, consumed: true });
  const behind = await harness.freezeWindow({ ciIds: [ciId] });
  await windowsInForce([byTarget, behind]);

  // Only a change-manager's justification, with the authorized emergency change, overrides them.
  await refusesWith(deploymentId, ["gate.freeze_window", "gate.freeze_window"], deployer, "INC-7 outage");
  const manager = await harness.client("cm", ["change-manager"]);
  const { deployment } = await startsOnceReady(deploymentId, manager, "INC-7 outage");
  expect(deployment?.state).toBe(DeploymentState.SCHEDULED);
  const scheduled = (await harness.service.context.store.readStream(deploymentId)).find(
    (event) => event.type === DeploymentScheduledSchema.typeName,
  );
  const recorded = fromBinary(DeploymentScheduledSchema, scheduled?.data as Uint8Array);
  expect(recorded.freezeOverrideJustification).toBe("INC-7 outage");
  expect(recorded.overriddenFreezeWindowIds.sort()).toEqual([byTarget, behind].sort());
});

test("blue/green: a freeze on the live colour's targets holds, though the package goes to the idle one", async () => {
  const [blue, green] = [uniqueId("blue"), uniqueId("green")];
  const env = uniqueId("env");
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name: env, promotionRank: 1, targetGroups: groups({ blue: [blue], green: [green] }) },
  });
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  await harness.releaseReady(releaseId);
  await harness.artifact(artifactId);
  // The first deployment goes to blue and switches traffic there, off green: green's freeze holds.
  const onGreen = await harness.freezeWindow({ ciIds: [green] }, { consumed: true });
  const { deployment } = await deployer.planDeployment({
    ...rid(),
    releaseId,
    environment: env,
    artifacts: [artifact(artifactId)],
    strategy: strategyOf(DeploymentStrategyKind.BLUE_GREEN),
  });
  expect(deployment?.steps.flatMap((step) => step.targetCiIds)).not.toContain(green);
  const subjects = await waitFor(
    async () => {
      const found = await preconditionSubjects(
        deployer.startDeployment({ ...rid(), deploymentId: deployment?.deploymentId as string }),
        "gate.freeze_window",
      );
      return found.length ? found : undefined;
    },
    { timeoutMs: 30_000, description: "the freeze on green in force" },
  );
  expect(subjects).toEqual([onGreen]);
});

test("a package must have succeeded in the previous environment of the promotion order", async () => {
  const test = await environment();
  const staging = await environment({ promotesFrom: test });
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  await harness.releaseReady(releaseId);
  await harness.artifact(artifactId);
  const skipped = await plan(staging, { releaseId, artifactId });
  await refusesWith(skipped, ["gate.promotion_order"]);

  // Deployed to the previous environment by an executor: then staging may start.
  const first = await plan(test, { releaseId, artifactId });
  await startsOnceReady(first);
  const executor = await harness.client("agent", ["executor"]);
  for (;;) {
    const { assignment } = await executor.claimStep({
      ...rid(),
      executorId: "agent",
      environments: [test],
      leaseSeconds: 30,
    });
    if (!assignment) break;
    const lease = {
      deploymentId: first,
      stepIndex: assignment.step?.index ?? 0,
      fencingToken: assignment.fencingToken,
    };
    const verify = assignment.step?.kind === StepKind.VERIFY;
    for (const ciId of assignment.step?.targetCiIds ?? []) {
      await executor.reportTargetProgress({
        ...rid(),
        lease,
        ciId,
        outcome: TargetOutcome.SUCCEEDED,
        verifications: verify ? [{ check: "smoke", passed: true }] : [],
      });
    }
    await executor.completeStep({ ...rid(), lease });
  }
  expect((await deployer.getDeployment({ deploymentId: first })).deployment?.state).toBe(DeploymentState.SUCCEEDED);
  expect((await deployer.startDeployment({ ...rid(), deploymentId: skipped })).deployment?.state).toBe(
    DeploymentState.SCHEDULED,
  );
});

test("protection: the approval is missing until the quorum; only approvers approve, never the creator", async () => {
  const env = await environment({ protection: { approvalGroup: "prod-approvers", quorum: 1 } });
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  await harness.releaseReady(releaseId);
  await harness.artifact(artifactId);
  const deploymentId = await plan(env, { releaseId, artifactId });
  await refusesWith(deploymentId, ["deployment.protection_approval"]);

  // The planner "dana" under her name in capitals is still the creator.
  const creator = await harness.client("Dana", ["deployer", "approver"], ["prod-approvers"]);
  expect(await refusedWith(creator.approveDeployment({ ...rid(), deploymentId }), status.PERMISSION_DENIED)).toContain(
    "creator",
  );
  // Approving needs the approver role, as for releases and changes: the group alone is not enough.
  const member = await harness.client("vic", ["deployer", "viewer"], ["prod-approvers"]);
  expect(await refusedWith(member.approveDeployment({ ...rid(), deploymentId }), status.PERMISSION_DENIED)).toMatch(
    /approver/,
  );
  const outsider = await harness.client("otto", ["approver"], ["elsewhere"]);
  await refusedWith(outsider.approveDeployment({ ...rid(), deploymentId }), status.PERMISSION_DENIED);
  const approver = await harness.client("petra", ["approver"], ["prod-approvers"]);
  const approved = await approver.approveDeployment({ ...rid(), deploymentId, comment: "go" });
  expect(approved.deployment?.state).toBe(DeploymentState.PLANNED);
  expect((await startsOnceReady(deploymentId)).deployment?.state).toBe(DeploymentState.SCHEDULED);
});

test("a protection policy changed since the plan asks for a new plan: added, or moved to another group after the approval", async () => {
  const define = async (name: string, protection?: { approvalGroup: string; quorum: number }) => {
    const environment = { name, promotionRank: 1, targetGroups: groups({ rest: [`${name}-host`] }), protection };
    if (!protection) await deployer.registerEnvironment({ ...rid(), environment });
    else await deployer.changeEnvironment({ ...rid(), environment });
  };
  const planned = async (name: string) => {
    const releaseId = randomUUID();
    const artifactId = randomUUID();
    await harness.releaseReady(releaseId);
    await harness.artifact(artifactId);
    return plan(name, { releaseId, artifactId });
  };
  const approver = await harness.client("petra", ["approver"], ["prod-approvers"]);

  // Planned unprotected, protected since: its missing approval is not waived.
  const added = uniqueId("env");
  await define(added);
  const unprotected = await planned(added);
  await define(added, { approvalGroup: "prod-approvers", quorum: 1 });
  await refusesWith(unprotected, ["gate.protection_changed"]);
  const { ready, violations } = await deployer.checkDeploymentGates({ deploymentId: unprotected });
  expect([ready, violations.map((v) => v.description)]).toEqual([
    false,
    [`${added} requires 1 approval(s) from prod-approvers now, the plan no approval: plan the deployment again`],
  ]);

  // Approved by the group it was planned under, which approves there no more.
  const moved = uniqueId("env");
  await define(moved);
  await define(moved, { approvalGroup: "prod-approvers", quorum: 1 });
  const approved = await planned(moved);
  await approver.approveDeployment({ ...rid(), deploymentId: approved, comment: "go" });
  await define(moved, { approvalGroup: "sre", quorum: 1 });
  await refusesWith(approved, ["gate.protection_changed"]);
  // Planned again, it waits for the group the environment names now.
  await deployer.cancelDeployment({ ...rid(), deploymentId: approved, reason: "protection changed" });
  await refusesWith(await planned(moved), ["deployment.protection_approval"]);
});

test("bad input is INVALID_ARGUMENT; a retried plan returns the first deployment", async () => {
  const env = await environment();
  await refusedWith(
    deployer.planDeployment({ requestId: "nope", releaseId: randomUUID(), environment: env, artifacts: [] }),
    status.INVALID_ARGUMENT,
  );
  const request = {
    ...rid(),
    releaseId: randomUUID(),
    environment: env,
    artifacts: [artifact(randomUUID())],
    strategy: ALL_AT_ONCE,
  };
  // A strategy without its kind, or with a kind no version defines, is bad input too, naming the field.
  for (const strategy of [{}, { kind: 99 as DeploymentStrategyKind }]) {
    const refused = errorDetails(
      await deployer.planDeployment({ ...request, ...rid(), strategy }).catch((e: unknown) => e),
    );
    expect([refused.code, refused.badRequest?.fieldViolations.map((v) => v.field)]).toEqual([
      status.INVALID_ARGUMENT,
      ["strategy.kind"],
    ]);
  }
  // An environment's name is at most 100 characters, as its registration allows: a longer one is bad input.
  const long = "e".repeat(101);
  for (const call of [
    deployer.planDeployment({ ...request, ...rid(), environment: long }),
    deployer.setEnvironmentFreeze({ ...rid(), environment: long, frozen: true, reason: "" }),
    deployer.listDeployments({ environment: long }),
  ]) {
    const refused = errorDetails(await call.catch((e: unknown) => e));
    expect([refused.code, refused.badRequest?.fieldViolations.map((v) => v.field)]).toEqual([
      status.INVALID_ARGUMENT,
      ["environment"],
    ]);
  }
  const first = await deployer.planDeployment(request);
  const again = await deployer.planDeployment(request);
  expect(again).toEqual(first);
  // After the deployment moved on, the retry still answers it as planned (rebuilt at that version).
  const deploymentId = first.deployment?.deploymentId as string;
  const cancelled = await deployer.cancelDeployment({ ...rid(), deploymentId, reason: "not today" });
  expect(cancelled.deployment?.version).toBeGreaterThan(first.deployment?.version ?? 0n);
  expect(await deployer.planDeployment(request)).toEqual(first);
  await refusedWith(
    deployer.planDeployment({
      ...rid(),
      releaseId: randomUUID(),
      environment: uniqueId("missing"),
      artifacts: [artifact(randomUUID())],
      strategy: ALL_AT_ONCE,
    }),
    status.NOT_FOUND,
  );
  // A command on a deployment or an environment that does not exist names it as the client does.
  const unknown = randomUUID();
  const resource = (call: Promise<unknown>) =>
    call.then(
      () => undefined,
      (e: unknown) => errorDetails(e).resourceInfo,
    );
  expect(await resource(deployer.pauseDeployment({ ...rid(), deploymentId: unknown, reason: "wait" }))).toMatchObject({
    resourceType: "deployment",
    resourceName: unknown,
  });
  // Registered twice: the second names the environment that exists.
  const existing = await environment();
  const registeredAgain = deployer.registerEnvironment({
    ...rid(),
    environment: { name: existing, promotionRank: 1, targetGroups: groups({ rest: [uniqueId("ci")] }) },
  });
  expect(await resource(registeredAgain)).toEqual(
    expect.objectContaining({ resourceType: "environment", resourceName: existing }),
  );
  // A refusal on a deployment names it by its id.
  const planned = await plan(existing);
  const held = await deployer.resumeDeployment({ ...rid(), deploymentId: planned }).catch((e: unknown) => e);
  expect(errorDetails(held).preconditionFailure?.violations.map((v) => [v.type, v.subject])).toEqual([
    ["deployment.not_paused", planned],
  ]);
  // An environment's stream is `environment-<name>`; the client knows it by its name, even one
  // that is the word itself.
  for (const environment of [uniqueId("nowhere"), "environment"]) {
    expect(await resource(deployer.setEnvironmentFreeze({ ...rid(), environment, frozen: true }))).toMatchObject({
      resourceType: "environment",
      resourceName: environment,
    });
  }
});

test("ids and names longer than the CMDB's and the DML's are refused where they enter, naming the field", async () => {
  const violations = async (call: Promise<unknown>) => {
    const error = await call.then(
      () => undefined,
      (e: unknown) => e,
    );
    const details = errorDetails(error);
    expect(details.code).toBe(status.INVALID_ARGUMENT);
    return details.badRequest?.fieldViolations.map((v) => v.field);
  };
  const registered = (ciIds: string[], approvalGroup = "") =>
    violations(
      deployer.registerEnvironment({
        ...rid(),
        environment: {
          name: uniqueId("env"),
          promotionRank: 1,
          targetGroups: [{ name: "rest", ciIds }],
          protection: { approvalGroup, quorum: 1 },
        },
      }),
    );
  // A CI id longer than any CI's would later fail every read side that keys rows by target.
  const long = `ci-${"x".repeat(200)}`;
  expect(await registered([uniqueId("ci"), long], "g".repeat(201))).toEqual([
    "environment.target_groups[0].ci_ids[1]",
    "environment.protection.approval_group",
  ]);
  // Nor a blank or a control character: " host-1" would name no host, on any read side.
  expect(await registered([" ci-pad ", "a\tb", "a b", "a\u007fb", "ci-fine", "hôte-1"])).toEqual(
    [0, 1, 2, 3].map((i) => `environment.target_groups[0].ci_ids[${i}]`),
  );
  expect(
    await violations(
      deployer.planDeployment({
        ...rid(),
        releaseId: randomUUID(),
        environment: await environment(),
        artifacts: [{ ...artifact(randomUUID()), name: "n".repeat(215) }],
        strategy: ALL_AT_ONCE,
      }),
    ),
  ).toEqual(["artifacts[0].name"]);
  // A target's report names one of the step's CIs: as bounded as they are.
  const executor = await harness.client("exe", ["executor"]);
  expect(
    await violations(
      executor.reportTargetProgress({
        ...rid(),
        lease: { deploymentId: randomUUID(), stepIndex: 0, fencingToken: 1n },
        ciId: long,
        outcome: TargetOutcome.SUCCEEDED,
      }),
    ),
  ).toEqual(["ci_id"]);
});
