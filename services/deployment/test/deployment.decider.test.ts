import { create, createRegistry, type DescMessage, toBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import {
  DeployedArtifactSchema,
  DeploymentStrategyKind,
  file_rdm_deployment_v1_events,
  ProtectionPolicySchema,
  StepKind,
  StepState,
  TargetGroupSchema,
  TargetOutcome,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { baselineLeftBy } from "../src/domain/baseline.js";
import { type DeploymentEvent, decide, evolve, fold, initialState, type RuleDetail } from "../src/domain/index.js";
import { baseline, Deciding, environment, NOW, refusal, report, strategy } from "./deciders.js";

const eventTypes = createRegistry(file_rdm_deployment_v1_events);
const deploymentEventSchema = (event: DeploymentEvent) => eventTypes.getMessage(event.$typeName) as DescMessage;

const ALL_AT_ONCE = strategy({ kind: DeploymentStrategyKind.ALL_AT_ONCE });

/** An environment with a blue and a green group, blue live. */
const blueGreenEnvironment = () =>
  environment({
    liveColour: "blue",
    targetGroups: [
      create(TargetGroupSchema, { name: "blue", ciIds: ["b-1"] }),
      create(TargetGroupSchema, { name: "green", ciIds: ["g-1"] }),
    ],
  });

describe("strategy expansion", () => {
  const targetsOf = (d: Deciding) => d.deployment.steps.map((step) => [StepKind[step.kind], step.targetCiIds]);

  test("ALL_AT_ONCE deploys every target, then verifies", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    expect(targetsOf(d)).toEqual([
      ["DEPLOY", ["ci-1", "ci-2", "ci-3", "ci-4"]],
      ["VERIFY", ["ci-1", "ci-2", "ci-3", "ci-4"]],
    ]);
    expect(d.deployment.artifacts[0]?.targetCiIds).toEqual(["ci-1", "ci-2", "ci-3", "ci-4"]);
  });

  test("ROLLING cuts batches by size or percentage", () => {
    const bySize = new Deciding();
    bySize.plan(strategy({ kind: DeploymentStrategyKind.ROLLING, batchSize: 3 }));
    expect(targetsOf(bySize).slice(0, 2)).toEqual([
      ["DEPLOY", ["ci-1", "ci-2", "ci-3"]],
      ["DEPLOY", ["ci-4"]],
    ]);
    const byPercent = new Deciding();
    byPercent.plan(strategy({ kind: DeploymentStrategyKind.ROLLING, batchPercent: 50 }));
    expect(targetsOf(byPercent).map(([kind]) => kind)).toEqual(["DEPLOY", "DEPLOY", "VERIFY"]);
    expect(
      refusal(() => new Deciding().plan(strategy({ kind: DeploymentStrategyKind.ROLLING }))).conditions[0]?.rule,
    ).toBe("strategy.rolling_batch");
  });

  test("CANARY pauses a week at most after a stage: longer waits are manual promotions", () => {
    const stage = (weightPercent: number, pauseSeconds: number) => ({
      $typeName: "rdm.deployment.v1.CanaryStage" as const,
      weightPercent,
      pauseSeconds,
      manualPromotion: false,
    });
    const planned = (pauseSeconds: number, last = 0) =>
      new Deciding().plan(
        strategy({ kind: DeploymentStrategyKind.CANARY, canaryStages: [stage(25, pauseSeconds), stage(100, last)] }),
      );
    expect(() => planned(604_800)).not.toThrow();
    // The last stage's pause is never waited: not refused.
    expect(() => planned(60, 4_294_967_295)).not.toThrow();
    const refused = refusal(() => planned(604_801));
    expect(refused.conditions.map((c) => [c.rule, c.description])).toEqual([
      ["strategy.canary_pause", "a canary stage pauses at most 604800 s (7 days): wait longer with manual_promotion"],
    ]);
  });

  test("CANARY weighs stages, each reaching at least one more target, with their pauses", () => {
    const d = new Deciding();
    d.plan(
      strategy({
        kind: DeploymentStrategyKind.CANARY,
        canaryStages: [
          { $typeName: "rdm.deployment.v1.CanaryStage", weightPercent: 5, pauseSeconds: 60, manualPromotion: false },
          { $typeName: "rdm.deployment.v1.CanaryStage", weightPercent: 50, pauseSeconds: 0, manualPromotion: true },
          { $typeName: "rdm.deployment.v1.CanaryStage", weightPercent: 100, pauseSeconds: 0, manualPromotion: false },
        ],
      }),
    );
    const steps = d.deployment.steps;
    expect(steps.map((step) => step.targetCiIds)).toEqual([
      ["ci-1"],
      ["ci-2"],
      ["ci-3", "ci-4"],
      ["ci-1", "ci-2", "ci-3", "ci-4"],
    ]);
    expect(steps.map((step) => [step.pauseSecondsAfter, step.promotionAfter])).toEqual([
      [60, false],
      [0, true],
      [0, false],
      [0, false],
    ]);
    expect(steps.map((step) => step.label)).toEqual([
      "canary 5% (1 of 4 targets)",
      "canary 50% (2 of 4 targets)",
      "canary 100% (4 of 4 targets)",
      "verify",
    ]);
    // Rounded down, each stage its own step: 34% of three targets is one, 67% two.
    const thirds = new Deciding();
    thirds.plan(
      strategy({
        kind: DeploymentStrategyKind.CANARY,
        canaryStages: [34, 67, 100].map((weightPercent) => ({
          $typeName: "rdm.deployment.v1.CanaryStage" as const,
          weightPercent,
          pauseSeconds: 30,
          manualPromotion: false,
        })),
      }),
      environment({
        targetGroups: [{ $typeName: "rdm.deployment.v1.TargetGroup", name: "rest", ciIds: ["a", "b", "c"] }],
      }),
    );
    expect(thirds.deployment.steps.map((step) => [step.targetCiIds, step.pauseSecondsAfter])).toEqual([
      [["a"], 30],
      [["b"], 30],
      [["c"], 0],
      [["a", "b", "c"], 0],
    ]);
    // More stages than targets: the last one reached reaches them all, and says so.
    const few = new Deciding();
    few.plan(
      strategy({
        kind: DeploymentStrategyKind.CANARY,
        canaryStages: [10, 25, 50, 100].map((weightPercent) => ({
          $typeName: "rdm.deployment.v1.CanaryStage" as const,
          weightPercent,
          pauseSeconds: 30,
          manualPromotion: false,
        })),
      }),
      environment({ targetGroups: [{ $typeName: "rdm.deployment.v1.TargetGroup", name: "rest", ciIds: ["a", "b"] }] }),
    );
    expect(few.deployment.steps.map((step) => [step.label, step.pauseSecondsAfter])).toEqual([
      ["canary 10% (1 of 2 targets)", 30],
      ["canary 100% (2 of 2 targets)", 0],
      ["verify", 0],
    ]);
    const decreasing = strategy({
      kind: DeploymentStrategyKind.CANARY,
      canaryStages: [
        { $typeName: "rdm.deployment.v1.CanaryStage", weightPercent: 50, pauseSeconds: 0, manualPromotion: false },
      ],
    });
    expect(refusal(() => new Deciding().plan(decreasing)).conditions[0]?.rule).toBe("strategy.canary_stages");
  });

  test("BLUE_GREEN deploys to the idle colour, verifies it, then switches", () => {
    const env = blueGreenEnvironment();
    const d = new Deciding();
    d.plan(strategy({ kind: DeploymentStrategyKind.BLUE_GREEN }), env);
    expect(d.deployment.steps.map((step) => [StepKind[step.kind], step.colour, step.targetCiIds])).toEqual([
      ["DEPLOY", "green", ["g-1"]],
      ["VERIFY", "green", ["g-1"]],
      ["SWITCH", "green", ["g-1"]],
    ]);
    // The package goes to green only: blue keeps what it runs.
    expect(d.deployment.artifacts.map((artifact) => artifact.targetCiIds)).toEqual([["g-1"]]);
    expect(
      refusal(() => new Deciding().plan(strategy({ kind: DeploymentStrategyKind.BLUE_GREEN }))).conditions[0]?.rule,
    ).toBe("strategy.blue_green_groups");
  });

  test("PILOT deploys the pilot group, waits for a sign-off, then the rest", () => {
    const d = new Deciding();
    d.plan(strategy({ kind: DeploymentStrategyKind.PILOT }));
    expect(d.deployment.steps.map((step) => [step.targetCiIds, step.promotionAfter])).toEqual([
      [["ci-1"], true],
      [["ci-2", "ci-3", "ci-4"], false],
      [["ci-1", "ci-2", "ci-3", "ci-4"], false],
    ]);
  });

  test("an environment without targets cannot be planned", () => {
    expect(refusal(() => new Deciding().plan(ALL_AT_ONCE, environment({ targetGroups: [] }))).conditions[0]?.rule).toBe(
      "environment.targets",
    );
  });
});

describe("approval and start", () => {
  const protectedEnv = environment({
    protection: create(ProtectionPolicySchema, { approvalGroup: "prod-approvers", quorum: 2 }),
  });
  const approve = (approver: string, groups = ["prod-approvers"]) => ({
    kind: "approveDeployment" as const,
    approver,
    approverGroups: groups,
    approvalGroup: "prod-approvers",
    comment: "",
  });

  test("a protected environment waits for its quorum; the creator and outsiders never approve", () => {
    const d = new Deciding("alice");
    d.plan(ALL_AT_ONCE, protectedEnv);
    expect(d.deployment.state).toBe(DeploymentState.AWAITING_APPROVAL);
    expect(refusal(() => d.run(approve("alice"), "alice")).rule).toBe("deployment.creator_cannot_approve");
    expect(refusal(() => d.run(approve(" ALICE"))).rule).toBe("deployment.creator_cannot_approve");
    expect(refusal(() => d.run(approve("mallory", ["other"]))).rule).toBe("deployment.approval_group");
    d.run(approve("bob"));
    expect(refusal(() => d.run(approve("bob"))).rule).toBe("deployment.approved_once");
    expect(refusal(() => d.run(approve("Bob"))).rule).toBe("deployment.approved_once");
    const started = refusal(() => d.start());
    expect(started.conditions.map((detail) => detail.rule)).toEqual(["deployment.protection_approval"]);
    d.run(approve("carol"));
    expect(d.deployment.state).toBe(DeploymentState.PLANNED);
    // A further approver is told the deployment is approved, not that PLANNED cannot be approved.
    const late = refusal(() => d.run(approve("dave")));
    expect([late.rule, late.message]).toEqual([
      "deployment.approved",
      "the deployment is approved already: bob, carol met the quorum of 2; it may start",
    ]);
    d.start();
    expect(d.deployment.state).toBe(DeploymentState.SCHEDULED);
  });

  test("a deployment to an unprotected environment needs no approval: one given is refused as not required", () => {
    const d = new Deciding("alice");
    d.plan(ALL_AT_ONCE, environment());
    const refused = refusal(() => d.run({ ...approve("bob", []), approvalGroup: "" }));
    expect([refused.code, refused.rule]).toEqual(["FAILED_PRECONDITION", "deployment.approval_not_required"]);
  });

  test("an environment whose baseline cannot be recorded with a start is refused it, naming the baseline's size", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    const targetCiIds = Array.from({ length: 40_000 }, (_, i) => `host-${String(i).padStart(6, "0")}`);
    const big = [create(DeployedArtifactSchema, { artifactId: "a-old", name: "api", version: "1.0.0", targetCiIds })];
    const refused = refusal(() => d.run({ ...d.startCommand(), baseline: big }));
    expect(refused.conditions.map((c) => [c.rule, c.subject])).toEqual([["deployment.baseline_too_large", "staging"]]);
    expect(refused.conditions[0]?.description).toContain("40000 artifact-target pairs");
    expect(d.deployment.state).toBe(DeploymentState.PLANNED);
  });

  test("start lists every unmet gate with the missing approval", () => {
    const d = new Deciding("alice");
    d.plan(ALL_AT_ONCE, protectedEnv);
    const gateViolations = [
      { rule: "gate.environment_frozen", subject: "staging", description: "frozen" },
      { rule: "gate.artifact_quarantined", subject: "a-new", description: "quarantined" },
    ];
    const error = refusal(() =>
      d.run({
        kind: "startDeployment",
        gateViolations,
        baseline,
        liveColour: "",
        freezeOverrideJustification: "",
        overriddenFreezeWindowIds: [],
        changeRequestIds: [],
        now: NOW,
      }),
    );
    expect(error.conditions.map((detail) => detail.rule)).toEqual([
      "gate.environment_frozen",
      "gate.artifact_quarantined",
      "deployment.protection_approval",
    ]);
  });

  test("the first claim starts the deployment; scheduling keeps the baseline to restore", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.start();
    expect(d.deployment.baseline).toEqual(baseline);
    expect(d.deployment.steps[0]?.state).toBe(StepState.READY);
    d.claim(0);
    expect(d.types(d.events).slice(-2)).toEqual(["DeploymentStarted", "DeploymentStepClaimed"]);
    expect(d.deployment.state).toBe(DeploymentState.IN_PROGRESS);
    // The change requests the start's gates checked go with every outcome.
    expect(d.events.at(-2)).toMatchObject({ changeRequestIds: ["c-1"] });
  });

  test("it begins with the changes its start checked that are still its release's; its outcomes name those", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.run({ ...d.startCommand(), changeRequestIds: ["c-1", "c-2"] });
    // c-2 unlinked from the release between the start and the first claim (gatesAsItBegins).
    const token = d.claim(0, "exec-1", false, { violations: [], changeRequestIds: ["c-1"] });
    const of = (type: string) => d.events.find((event) => event.$typeName === `rdm.deployment.v1.${type}`);
    expect(of("DeploymentStarted")).toMatchObject({ changeRequestIds: ["c-1"] });
    d.reportAll(0, token);
    d.complete(0, token);
    for (let index = 1; index < d.deployment.steps.length; index++) d.pass(index);
    expect(d.deployment.state).toBe(DeploymentState.SUCCEEDED);
    expect(of("DeploymentSucceeded")).toMatchObject({ changeRequestIds: ["c-1"], changeRequestIdsRecorded: true });
    // Every one unlinked since: it begins naming none, and says the list is whole.
    const none = new Deciding();
    none.plan(ALL_AT_ONCE);
    none.start();
    none.claim(0, "exec-1", false, { violations: [], changeRequestIds: [] });
    expect(none.events.find((event) => event.$typeName === "rdm.deployment.v1.DeploymentStarted")).toMatchObject({
      changeRequestIds: [],
      changeRequestIdsRecorded: true,
    });
  });

  test("a plan whose window has ended is refused; so is the start of one whose window ended since; one whose window is ahead waits for it", () => {
    const hour = 3_600_000;
    const window = (from: number, to: number) =>
      create(TimeWindowSchema, {
        start: timestampFromDate(new Date(NOW.getTime() + from * hour)),
        end: timestampFromDate(new Date(NOW.getTime() + to * hour)),
      });
    const over = refusal(() => new Deciding().plan(ALL_AT_ONCE, undefined, window(-3, -1)));
    expect(over).toMatchObject({ code: "FAILED_PRECONDITION", rule: "deployment.window_passed" });
    expect(over.conditions.map((c) => c.rule)).toEqual(["deployment.window_passed"]);
    const late = new Deciding();
    late.plan(ALL_AT_ONCE, undefined, window(-3, -1), new Date(NOW.getTime() - 4 * hour));
    expect(refusal(() => late.start()).conditions.map((c) => c.rule)).toEqual(["deployment.window_passed"]);
    const early = new Deciding();
    early.plan(ALL_AT_ONCE, undefined, window(1, 3));
    const [scheduled] = early.start();
    expect(scheduled).toMatchObject({ availableAt: timestampFromDate(new Date(NOW.getTime() + hour)) });
  });

  test("a scheduled deployment whose gates no longer hold as it begins, or whose window has ended, is cancelled, not started", () => {
    const hour = 3_600_000;
    const at = (hours: number) => new Date(NOW.getTime() + hours * hour);
    const scheduled = () => {
      const d = new Deciding();
      d.plan(
        ALL_AT_ONCE,
        undefined,
        create(TimeWindowSchema, { start: timestampFromDate(at(1)), end: timestampFromDate(at(3)) }),
      );
      d.start();
      return d;
    };
    const claimAt = (d: Deciding, now: Date, gateViolations: RuleDetail[] = []) =>
      d.types(
        d.run(
          {
            kind: "claimStep",
            stepIndex: 0,
            executorId: "exec-1",
            leaseExpiresAt: new Date(now.getTime() + 30_000),
            leaseExpired: false,
            begins: { violations: gateViolations, changeRequestIds: ["c-1"] },
            now,
          },
          "exec-1",
        ),
      );
    const freeze = { rule: "gate.freeze_window", subject: "fw-1", description: "blackout: quarter end" };

    const frozen = scheduled();
    expect(claimAt(frozen, at(1), [freeze])).toEqual(["DeploymentCancelled"]);
    expect(frozen.deployment).toMatchObject({
      state: DeploymentState.CANCELLED,
      reason:
        "not started: 1 gate(s) not met when it was due to begin: gate.freeze_window (fw-1): blackout: quarter end",
    });
    expect(frozen.deployment.steps.map((step) => step.state)).toEqual(
      frozen.deployment.steps.map(() => StepState.SKIPPED),
    );

    const late = scheduled();
    expect(claimAt(late, at(3))).toEqual(["DeploymentCancelled"]);
    expect(late.deployment.reason).toContain("deployment.window_passed (d-1)");

    // The reason is cut to what CancelDeployment takes, by code points (no pair split).
    const many = scheduled();
    const long = { rule: "gate.freeze_window", subject: "fw-2", description: "🧊".repeat(3_000) };
    claimAt(many, at(2), [long]);
    expect([...many.deployment.reason]).toHaveLength(2_000);
    expect(many.deployment.reason.endsWith("🧊…")).toBe(true);

    expect(claimAt(scheduled(), at(2))).toEqual(["DeploymentStarted", "DeploymentStepClaimed"]);
  });

  test("an overridden freeze is recorded on DeploymentScheduled: the justification and the calendar windows", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    const [scheduled] = d.run({
      kind: "startDeployment",
      gateViolations: [],
      baseline,
      liveColour: "",
      freezeOverrideJustification: "INC-42: payments down",
      overriddenFreezeWindowIds: ["fw-1", "fw-2"],
      changeRequestIds: [],
      now: NOW,
    });
    expect(scheduled).toMatchObject({
      $typeName: "rdm.deployment.v1.DeploymentScheduled",
      freezeOverrideJustification: "INC-42: payments down",
      overriddenFreezeWindowIds: ["fw-1", "fw-2"],
    });
  });

  test("cancel before the start; not after", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.run({ kind: "cancelDeployment", reason: "not today" });
    expect(d.deployment.state).toBe(DeploymentState.CANCELLED);
    const running = new Deciding();
    running.plan(ALL_AT_ONCE);
    running.start();
    running.claim(0);
    expect(refusal(() => running.run({ kind: "cancelDeployment", reason: "" })).rule).toBe("deployment.state");
  });
});

describe("execution", () => {
  test("ALL_AT_ONCE: deploy, verify, succeed", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.start();
    d.pass(0);
    const token = d.claim(1);
    expect(d.deployment.state).toBe(DeploymentState.VERIFYING);
    d.run(report(1, token, "ci-2", { verifications: [{ check: "http 200", passed: true, detail: "" }] }));
    d.run(report(1, token, "ci-3", { outcome: TargetOutcome.IN_PROGRESS }));
    // Done only when every target was reported on under the lease (in progress is not done).
    const early = refusal(() => d.complete(1, token));
    expect([early.rule, early.conditions.map((c) => c.subject)]).toEqual([
      "step.targets_unreported",
      ["ci-1", "ci-3", "ci-4"],
    ]);
    d.reportAll(1, token);
    // A target reported in progress again after its outcome is at work again: its last report counts.
    d.run(report(1, token, "ci-2", { outcome: TargetOutcome.IN_PROGRESS }));
    expect(refusal(() => d.complete(1, token)).conditions.map((c) => c.subject)).toEqual(["ci-2"]);
    d.run(report(1, token, "ci-2"));
    expect(d.types(d.complete(1, token))).toEqual(["DeploymentStepCompleted", "DeploymentSucceeded"]);
    expect(d.deployment.state).toBe(DeploymentState.SUCCEEDED);
  });

  test("fencing: a reclaimed step refuses its old holder's reports", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.start();
    const old = d.claim(0, "exec-1");
    expect(refusal(() => d.claim(0, "exec-2")).rule).toBe("step.not_ready");
    const current = d.claim(0, "exec-2", true);
    expect(current).toBe(old + 1n);
    expect(d.types(d.events).slice(-2)).toEqual(["DeploymentStepLeaseExpired", "DeploymentStepClaimed"]);
    expect(refusal(() => d.run(report(0, old, "ci-1"))).rule).toBe("step.lease_lost");
    expect(refusal(() => d.complete(0, old)).rule).toBe("step.lease_lost");
    d.reportAll(0, current);
    d.complete(0, current);
    expect(refusal(() => d.run(report(1, 1n, "ci-9"))).rule).toBe("step.lease_lost");
    // A step the deployment does not have is NOT_FOUND, as the API's lease check answers.
    const unknown = refusal(() => d.run(report(9, current, "ci-1")));
    expect([unknown.code, unknown.rule]).toEqual(["NOT_FOUND", "step.unknown"]);
  });

  test("CANARY: a pause delays the next stage; a manual stage waits for the promotion", () => {
    const d = new Deciding();
    d.plan(
      strategy({
        kind: DeploymentStrategyKind.CANARY,
        canaryStages: [
          { $typeName: "rdm.deployment.v1.CanaryStage", weightPercent: 25, pauseSeconds: 90, manualPromotion: false },
          { $typeName: "rdm.deployment.v1.CanaryStage", weightPercent: 50, pauseSeconds: 0, manualPromotion: true },
          { $typeName: "rdm.deployment.v1.CanaryStage", weightPercent: 100, pauseSeconds: 0, manualPromotion: false },
        ],
      }),
    );
    d.start();
    d.pass(0);
    expect(d.deployment.steps[1]?.availableAt?.seconds).toBe(BigInt(NOW.getTime() / 1000 + 90));
    d.pass(1);
    expect(d.deployment.awaitingPromotion).toBe(true);
    expect(d.deployment.steps[2]?.state).toBe(StepState.PENDING);
    expect(refusal(() => d.claim(2)).rule).toBe("step.not_ready");
    d.run({ kind: "promoteDeployment", comment: "error rate flat" });
    expect(d.deployment.steps[2]?.state).toBe(StepState.READY);
    expect(refusal(() => d.run({ kind: "promoteDeployment", comment: "" })).rule).toBe("deployment.no_promotion");
  });

  test("a deployment that ends while paused, or is cancelled paused, is on hold no more", () => {
    const ending = new Deciding();
    ending.plan(ALL_AT_ONCE);
    ending.start();
    ending.pass(0);
    const token = ending.claim(1);
    ending.run({ kind: "pauseDeployment", reason: "change freeze at noon" });
    ending.reportAll(1, token);
    ending.complete(1, token);
    expect([ending.deployment.state, ending.deployment.paused, ending.deployment.reason]).toEqual([
      DeploymentState.SUCCEEDED,
      false,
      "",
    ]);
    const cancelled = new Deciding();
    cancelled.plan(ALL_AT_ONCE);
    cancelled.start();
    cancelled.run({ kind: "pauseDeployment", reason: "hold" });
    cancelled.run({ kind: "cancelDeployment", reason: "not this week" });
    expect([cancelled.deployment.state, cancelled.deployment.paused]).toEqual([DeploymentState.CANCELLED, false]);
  });

  test("pause holds the queue until resumed", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.start();
    d.run({ kind: "pauseDeployment", reason: "incident elsewhere" });
    expect(refusal(() => d.claim(0)).rule).toBe("deployment.held");
    expect(d.deployment.reason).toBe("incident elsewhere");
    d.run({ kind: "resumeDeployment" });
    expect(d.deployment.reason).toBe("");
    expect(d.claim(0)).toBe(1n);
  });

  test("a failed verification fails the deployment and rolls back to the baseline", () => {
    const d = new Deciding();
    d.plan(strategy({ kind: DeploymentStrategyKind.ROLLING, batchSize: 2 }));
    d.start();
    d.pass(0);
    const token = d.claim(1);
    const failedCheck = { verifications: [{ check: "smoke", passed: false, detail: "500" }] };
    expect(d.types(d.run(report(1, token, "ci-3", failedCheck)))).toEqual([
      "DeploymentTargetProgressed",
      "DeploymentVerificationRecorded",
      "DeploymentFailed",
      "DeploymentRollbackStarted",
    ]);
    const rollback = d.deployment.steps.filter((step) => step.rollback);
    // Batch 1 completed and batch 2 was claimed: both are restored, then verified.
    expect(rollback.map((step) => [StepKind[step.kind], step.targetCiIds])).toEqual([
      ["ROLLBACK", ["ci-1", "ci-2", "ci-3", "ci-4"]],
      ["VERIFY", ["ci-1", "ci-2", "ci-3", "ci-4"]],
    ]);
    // The batch the failure came in failed; the verification not run was dropped.
    expect([d.deployment.steps[1]?.state, d.deployment.steps[2]?.state]).toEqual([StepState.FAILED, StepState.SKIPPED]);
    expect(refusal(() => d.complete(1, token)).rule).toBe("step.lease_lost");
    d.pass(rollback[0]?.index ?? -1);
    const last = d.pass(rollback[1]?.index ?? -1);
    expect(d.types(last)).toEqual(["DeploymentStepCompleted", "DeploymentRolledBack"]);
    expect(last[1]).toMatchObject({ artifacts: baseline });
    expect(d.deployment.state).toBe(DeploymentState.ROLLED_BACK);

    // fold (the deployment copied once, changed in place) gives what evolve one by one gave,
    // after every prefix, and changes neither the events nor the state it starts from.
    const bytes = d.events.map((event) => toBinary(deploymentEventSchema(event), event));
    for (let n = 0; n <= d.events.length; n++) {
      expect(fold(d.events.slice(0, n))).toEqual(d.events.slice(0, n).reduce(evolve, initialState()));
    }
    const before = fold(d.events.slice(0, 4));
    const copy = structuredClone(before);
    expect(fold(d.events.slice(4), before)).toEqual(d.state);
    expect(before).toEqual(copy);
    expect(d.events.map((event) => toBinary(deploymentEventSchema(event), event))).toEqual(bytes);
  });

  test("ROLLING stops past the failed-target limit", () => {
    const d = new Deciding();
    d.plan(strategy({ kind: DeploymentStrategyKind.ROLLING, batchSize: 4, maxFailedTargets: 1 }));
    d.start();
    const token = d.claim(0);
    const failed = { outcome: TargetOutcome.FAILED };
    expect(d.types(d.run(report(0, token, "ci-1", failed)))).toEqual(["DeploymentTargetProgressed"]);
    const events = d.run(report(0, token, "ci-2", failed));
    expect(d.types(events).slice(1, 3)).toEqual(["DeploymentFailed", "DeploymentRollbackStarted"]);
    expect(events[1]).toMatchObject({ failedTargetCiIds: ["ci-1", "ci-2"] });
  });

  test("a target failed within the limit keeps what it ran: the success and the baseline leave it out", () => {
    const d = new Deciding();
    d.plan(strategy({ kind: DeploymentStrategyKind.ROLLING, batchSize: 4, maxFailedTargets: 1 }));
    d.start();
    let events: ReturnType<typeof d.run> = [];
    for (const step of d.deployment.steps) {
      const token = d.claim(step.index);
      // Its deploy fails on ci-1; the verification after it passes there (the old version works).
      for (const ciId of step.targetCiIds) {
        const failed = ciId === "ci-1" && step.kind === StepKind.DEPLOY;
        d.run(report(step.index, token, ciId, failed ? { outcome: TargetOutcome.FAILED } : {}));
      }
      events = d.complete(step.index, token);
    }
    const succeeded = events.find((e) => e.$typeName === "rdm.deployment.v1.DeploymentSucceeded");
    const others = d.deployment.artifacts[0]?.targetCiIds.filter((ci) => ci !== "ci-1");
    expect(succeeded).toMatchObject({ failedTargetCiIds: ["ci-1"], artifacts: [{ targetCiIds: others }] });
    // What a rollback of it finds in place: the package but on ci-1.
    const left = baselineLeftBy(d.deployment).find((a) => a.artifactId === d.deployment.artifacts[0]?.artifactId);
    expect(left?.targetCiIds).toEqual(others);
  });

  test("a failed step fails the deployment; a fast manual rollback skips verification", () => {
    const failing = new Deciding();
    failing.plan(ALL_AT_ONCE);
    failing.start();
    const token = failing.claim(0);
    const events = failing.run({ kind: "failStep", stepIndex: 0, fencingToken: token, reason: "disk full", now: NOW });
    expect(failing.types(events)).toEqual(["DeploymentStepFailed", "DeploymentFailed", "DeploymentRollbackStarted"]);

    // What a failure may have left running: the package on the targets its steps took up only.
    const early = new Deciding();
    early.plan(strategy({ kind: DeploymentStrategyKind.ROLLING, batchSize: 2 }));
    early.start();
    const first = early.deployment.steps[0]?.targetCiIds;
    const firstToken = early.claim(0);
    const failed = early.run({
      kind: "failStep",
      stepIndex: 0,
      fencingToken: firstToken,
      reason: "disk full",
      now: NOW,
    });
    expect(failed[1]).toMatchObject({ artifacts: [{ targetCiIds: first }] });
    expect(first).toHaveLength(2);

    const manual = new Deciding();
    manual.plan(ALL_AT_ONCE);
    manual.start();
    manual.pass(0);
    manual.rollback(true);
    expect(manual.deployment.steps.filter((step) => step.rollback).map((step) => StepKind[step.kind])).toEqual([
      "ROLLBACK",
    ]);
  });

  test("a failed rollback step is queued again after a pause doubling from 5 s up to 5 min, until it is given up", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.start();
    d.pass(0);
    d.rollback();
    const index = d.deployment.steps.findIndex((step) => step.rollback);
    const pauses: number[] = [];
    for (let attempt = 0; attempt < 8; attempt++) {
      const fencingToken = d.claim(index);
      d.run({ kind: "failStep", stepIndex: index, fencingToken, reason: "target unreachable", now: NOW });
      const step = d.deployment.steps[index];
      expect([StepState[step?.state ?? 0], step?.failures]).toEqual(["READY", attempt + 1]);
      pauses.push((timestampDate(step?.availableAt ?? timestampFromDate(NOW)).getTime() - NOW.getTime()) / 1000);
    }
    expect(pauses).toEqual([5, 10, 20, 40, 80, 160, 300, 300]);
    expect(d.deployment.state).toBe(DeploymentState.ROLLING_BACK);
    // It cannot be cancelled, and the refusal says why rather than advising a rollback.
    const refused = refusal(() => d.run({ kind: "cancelDeployment", reason: "give up" }));
    expect([refused.rule, refused.message]).toEqual([
      "deployment.state",
      "cannot cancel a deployment in state ROLLING_BACK: its rollback restores the baseline and is retried until it does (see its failed rollback steps), or until AbandonRollback gives it up",
    ]);
    // Given up: FAILED, its restore skipped, naming the targets it did not restore. Rolled back
    // by hand, it had no failure recorded: the failure comes first, an outcome every consumer takes.
    const abandoned = d.run({ kind: "abandonRollback", reason: "host gone" });
    expect(d.types(abandoned)).toEqual(["DeploymentFailed", "DeploymentRollbackAbandoned"]);
    expect(abandoned[0]).toMatchObject({ reason: "rollback given up: host gone" });
    expect(abandoned[1]).toMatchObject({
      reason: "host gone",
      unrestoredTargetCiIds: d.deployment.steps[index]?.targetCiIds,
      releaseId: d.deployment.releaseId,
      environment: d.deployment.environment,
    });
    expect([DeploymentState[d.deployment.state], d.deployment.rollbackAbandoned, StepState[step(d, index)]]).toEqual([
      "FAILED",
      true,
      "SKIPPED",
    ]);
    expect(refusal(() => d.rollback()).rule).toBe("deployment.rollback_abandoned");
    const again = { kind: "abandonRollback", reason: "again" } as const;
    expect(refusal(() => d.run(again)).rule).toBe("deployment.state");

    // Its restore done and only the verification after it failing: the failure names no target.
    const restored = new Deciding();
    restored.plan(ALL_AT_ONCE);
    restored.start();
    restored.pass(0);
    restored.rollback();
    restored.pass(restored.deployment.steps.findIndex((s) => s.rollback && s.kind === StepKind.ROLLBACK));
    const [failure, given] = restored.run({ ...again, reason: "verification flaky" });
    expect([failure, given]).toMatchObject([{ artifacts: [] }, { unrestoredTargetCiIds: [] }]);

    // An automatic rollback follows its failure: giving it up records no second one.
    const automatic = new Deciding();
    automatic.plan(ALL_AT_ONCE);
    automatic.start();
    const token = automatic.claim(0);
    automatic.run({ kind: "failStep", stepIndex: 0, fencingToken: token, reason: "disk full", now: NOW });
    expect(automatic.types(automatic.run({ ...again, reason: "host gone" }))).toEqual(["DeploymentRollbackAbandoned"]);
  });

  const step = (d: Deciding, index: number) => d.deployment.steps[index]?.state ?? StepState.UNSPECIFIED;

  test("a deployment not begun is cancelled, not rolled back: it changed nothing to back out", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.start();
    const refused = refusal(() => d.rollback());
    expect([refused.rule, refused.message]).toEqual([
      "deployment.state",
      "cannot roll back a deployment that has not begun (it changed nothing): cancel it",
    ]);
    expect(d.types(d.run({ kind: "cancelDeployment", reason: "not today" }))).toEqual(["DeploymentCancelled"]);
  });

  test("BLUE_GREEN: VERIFYING while it verifies, IN_PROGRESS while it switches; a back-out switches back first, then restores the colour it left", () => {
    const env = blueGreenEnvironment();
    const d = new Deciding();
    d.plan(strategy({ kind: DeploymentStrategyKind.BLUE_GREEN }), env);
    d.start();
    d.pass(0);
    const verifying = d.claim(1);
    expect(d.deployment.state).toBe(DeploymentState.VERIFYING);
    d.reportAll(1, verifying);
    d.complete(1, verifying);
    const switching = d.claim(2);
    expect(d.deployment.state).toBe(DeploymentState.IN_PROGRESS);
    // The outcomes say which colour serves traffic after them.
    const colourOf = (events: DeploymentEvent[]) => events.map((e) => ("liveColour" in e ? e.liveColour : "-"));
    expect(colourOf(d.complete(2, switching))).toEqual(["-", "green"]);
    expect(d.deployment.switched).toBe(true);
    expect(d.deployment.state).toBe(DeploymentState.SUCCEEDED);
    d.rollback();
    const back = d.deployment.steps.filter((step) => step.rollback);
    // Traffic goes back to blue at once; green, which got the new version, gets the baseline back.
    expect(back.map((step) => [StepKind[step.kind], step.colour, step.targetCiIds])).toEqual([
      ["SWITCH", "blue", ["g-1"]],
      ["ROLLBACK", "", ["g-1"]],
      ["VERIFY", "", ["g-1"]],
    ]);
    // Given up, it says which colour serves traffic: green before the switch back, blue after.
    const giveUp = () => decide({ kind: "abandonRollback", reason: "host gone" }, { deployment: d.deployment });
    const colourGivenUp = () =>
      giveUp().flatMap((e) => (e.$typeName === "rdm.deployment.v1.DeploymentRollbackAbandoned" ? [e.liveColour] : []));
    expect(colourGivenUp()).toEqual(["green"]);
    d.pass(back[0]?.index ?? -1);
    expect(d.deployment.switched).toBe(false);
    expect(colourGivenUp()).toEqual(["blue"]);
    // Its failure names the package on green's targets, whose restore has not run.
    expect(giveUp()[0]).toMatchObject({
      $typeName: "rdm.deployment.v1.DeploymentFailed",
      artifacts: [{ targetCiIds: ["g-1"] }],
    });
    d.pass(back[1]?.index ?? -1);
    expect(colourOf(d.pass(back[2]?.index ?? -1))).toEqual(["-", "blue"]);
    expect(d.deployment.state).toBe(DeploymentState.ROLLED_BACK);
  });

  test("BLUE_GREEN: a failed verification before the switch restores the colour it deployed to; the live colour stays", () => {
    const d = new Deciding();
    d.plan(strategy({ kind: DeploymentStrategyKind.BLUE_GREEN }), blueGreenEnvironment());
    d.start();
    d.pass(0);
    const token = d.claim(1);
    d.run(report(1, token, "g-1", { verifications: [{ check: "smoke", passed: false, detail: "500" }] }));
    const back = d.deployment.steps.filter((step) => step.rollback);
    expect(back.map((step) => [StepKind[step.kind], step.targetCiIds])).toEqual([
      ["ROLLBACK", ["g-1"]],
      ["VERIFY", ["g-1"]],
    ]);
    d.pass(back[0]?.index ?? -1);
    const rolledBack = d
      .pass(back[1]?.index ?? -1)
      .find((e) => e.$typeName === "rdm.deployment.v1.DeploymentRolledBack");
    expect(rolledBack && "liveColour" in rolledBack ? rolledBack.liveColour : undefined).toBe("blue");
    expect(d.deployment.state).toBe(DeploymentState.ROLLED_BACK);
  });

  test("BLUE_GREEN: with no colour live before it, a back-out leaves traffic where it is and restores the baseline", () => {
    const d = new Deciding();
    d.plan(
      strategy({ kind: DeploymentStrategyKind.BLUE_GREEN }),
      environment({ ...blueGreenEnvironment(), liveColour: "" }),
    );
    d.start();
    for (const step of d.deployment.steps) d.pass(step.index);
    d.rollback();
    const back = d.deployment.steps.filter((step) => step.rollback);
    expect(back.map((step) => StepKind[step.kind])).toEqual(["ROLLBACK", "VERIFY"]);
    for (const step of back) d.pass(step.index);
    const rolledBack = d.events.find((e) => e.$typeName === "rdm.deployment.v1.DeploymentRolledBack");
    expect(rolledBack && "liveColour" in rolledBack ? rolledBack.liveColour : undefined).toBe("blue");
  });

  test("BLUE_GREEN: a plan made before another deployment switched colours is refused at start", () => {
    const env = blueGreenEnvironment();
    const d = new Deciding();
    d.plan(strategy({ kind: DeploymentStrategyKind.BLUE_GREEN }), env);
    const stale = refusal(() => d.start("green"));
    expect([stale.rule, stale.conditions.map((c) => c.rule)]).toEqual([
      "deployment.gates",
      ["deployment.colour_stale"],
    ]);
    d.start("blue");
    expect(d.deployment.state).toBe(DeploymentState.SCHEDULED);
  });

  test("a rollback needs the environment as the deployment left it", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.start();
    for (const step of d.deployment.steps) d.pass(step.index);
    expect(d.deployment.state).toBe(DeploymentState.SUCCEEDED);
    const later = { baselineDeploymentId: "d-2", baseline: ["a-newer"] };
    expect(refusal(() => d.rollback(false, later)).rule).toBe("deployment.superseded");
    expect(refusal(() => d.rollback(false, { running: "d-3" })).rule).toBe("gate.environment_busy");
    // A later deployment that was itself rolled back left this deployment's package running.
    expect(d.types(d.rollback(false, { baselineDeploymentId: "d-2", baseline: ["a-new"] }))).toContain(
      "DeploymentRollbackStarted",
    );
  });

  test("a later deployment of the same version to a target added since supersedes it", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.start();
    for (const step of d.deployment.steps) d.pass(step.index);
    // The same api 2.0.0 on ci-5 too: backing this one out would take it off ci-5, which it never reached.
    const wider = {
      baselineDeploymentId: "d-3",
      baseline: [["a-new", "api", "2.0.0", ["ci-1", "ci-2", "ci-3", "ci-4", "ci-5"]]] as [
        string,
        string,
        string,
        string[],
      ][],
    };
    d.environment.targetGroups.push(create(TargetGroupSchema, { name: "more", ciIds: ["ci-5"] }));
    expect(refusal(() => d.rollback(false, wider)).rule).toBe("deployment.superseded");
  });

  test("a rollback restores its package's artifact names only, whatever else was deployed there since", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    const worker = create(DeployedArtifactSchema, { artifactId: "w-1", name: "worker", targetCiIds: ["ci-1"] });
    const api = create(DeployedArtifactSchema, { artifactId: "a-old", name: "api", targetCiIds: ["ci-1", "ci-2"] });
    const [scheduled] = d.run({ ...d.startCommand(), baseline: [worker, api] });
    expect(scheduled && "baselineArtifactNames" in scheduled && scheduled.baselineArtifactNames).toEqual(["api"]);
    expect(d.deployment.baseline.map((a) => a.artifactId)).toEqual(["a-old"]);
    for (const step of d.deployment.steps) d.pass(step.index);
    // Worker 2 was deployed since: this deployment's api still runs, so it may be backed out.
    const started = d.rollback(false, {
      baselineDeploymentId: "d-2",
      baseline: [["w-2", "worker", "2.0.0", ["ci-1"]], "a-new"],
    });
    const rollback = started.find((event) => event.$typeName === "rdm.deployment.v1.DeploymentRollbackStarted");
    expect(rollback && "restoredArtifactNames" in rollback && rollback.restoredArtifactNames).toEqual(["api"]);
    expect(rollback && "artifacts" in rollback && rollback.artifacts.map((a) => a.artifactId)).toEqual(["a-old"]);
    // Its end names the targets the deployment reached, not one added to the environment since.
    const reached = d.deployment.steps.flatMap((step) => (step.rollback ? [] : step.targetCiIds));
    d.environment.targetGroups.push(create(TargetGroupSchema, { name: "more", ciIds: ["ci-5"] }));
    const ended = d.deployment.steps.filter((step) => step.rollback).flatMap((step) => d.pass(step.index));
    const rolledBack = ended.find((event) => event.$typeName === "rdm.deployment.v1.DeploymentRolledBack");
    expect(rolledBack && "restoredTargetCiIds" in rolledBack && rolledBack.restoredTargetCiIds).toEqual([
      ...new Set(reached),
    ]);
  });

  test("a start records its package's names of a baseline too large to record whole", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    const targetCiIds = Array.from({ length: 40_000 }, (_, i) => `host-${String(i).padStart(6, "0")}`);
    const other = create(DeployedArtifactSchema, { artifactId: "w-1", name: "worker", version: "1.0.0", targetCiIds });
    const api = create(DeployedArtifactSchema, { artifactId: "a-old", name: "api", targetCiIds: ["web-1"] });
    d.run({ ...d.startCommand(), baseline: [other, api] });
    expect(d.deployment.state).toBe(DeploymentState.SCHEDULED);
    expect(d.deployment.baseline.map((a) => [a.artifactId, a.targetCiIds])).toEqual([["a-old", ["web-1"]]]);
  });

  /** A blue-green deployment of a-new to green that succeeded over a-old on both colours. */
  const succeededBlueGreen = () => {
    const d = new Deciding();
    d.plan(strategy({ kind: DeploymentStrategyKind.BLUE_GREEN }), blueGreenEnvironment());
    const before = [create(DeployedArtifactSchema, { artifactId: "a-old", name: "api", targetCiIds: ["b-1", "g-1"] })];
    d.run({ ...d.startCommand("blue"), baseline: before });
    for (const step of d.deployment.steps) d.pass(step.index);
    expect(d.deployment.state).toBe(DeploymentState.SUCCEEDED);
    return d;
  };

  test("BLUE_GREEN: the environment runs what it left when both colours' versions are listed", () => {
    const d = succeededBlueGreen();
    // A later deployment rolled itself back to what this one left: blue the old version, green the new.
    const left = {
      baselineDeploymentId: "d-2",
      baseline: [
        ["a-old", "api", "", ["b-1"]],
        ["a-new", "api", "2.0.0", ["g-1"]],
      ] as [string, string, string, string[]][],
    };
    expect(d.types(d.rollback(false, left))).toContain("DeploymentRollbackStarted");
  });

  test("BLUE_GREEN: replaced on both colours since, it is superseded", () => {
    const d = succeededBlueGreen();
    const replaced = {
      baselineDeploymentId: "d-2",
      baseline: [["a-new", "api", "2.0.0", ["b-1", "g-1"]]] as [string, string, string, string[]][],
    };
    expect(refusal(() => d.rollback(false, replaced)).rule).toBe("deployment.superseded");
  });

  test("finished deployments refuse further commands", () => {
    const d = new Deciding();
    d.plan(ALL_AT_ONCE);
    d.run({ kind: "cancelDeployment", reason: "" });
    expect(refusal(() => d.run({ kind: "pauseDeployment", reason: "" })).rule).toBe("deployment.finished");
  });
});
