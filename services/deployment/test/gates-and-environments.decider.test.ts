import { create } from "@bufbuild/protobuf";
import { ProtectionPolicySchema, TargetGroupSchema } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import {
  decideEnvironment,
  type EnvironmentDefinition,
  type EnvironmentState,
  evaluateGates,
  evolveEnvironment,
  type FreezeWindowFact,
  freezeInForce,
  freezeWindowsInForce,
  type GateFacts,
} from "../src/domain/index.js";
import { refusal } from "./deciders.js";

const now = new Date("2031-03-01T10:00:00Z");
const API = { name: "api", version: "2.0.0" };
const ready: GateFacts = {
  now,
  releaseId: "r-1",
  release: { phase: ReleasePhase.DEPLOYMENT, approved: true, abandoned: false },
  changes: [
    {
      changeId: "c-1",
      known: true,
      authorized: true,
      emergency: false,
      window: { start: new Date("2031-03-01T09:00:00Z"), end: new Date("2031-03-01T11:00:00Z") },
    },
  ],
  environment: { name: "production", frozen: false, freezeReason: "", targetCiIds: ["ci-web", "ci-db"] },
  freezeWindows: [],
  previousEnvironment: { name: "staging", packageSucceeded: true },
  artifacts: [
    {
      artifactId: "a-1",
      known: true,
      verified: true,
      quarantined: false,
      planned: API,
      registered: API,
    },
  ],
  freezeOverride: { justification: "", byChangeManager: false },
};
const rules = (facts: Partial<GateFacts>) => evaluateGates({ ...ready, ...facts }).map((detail) => detail.rule);

describe("start gates", () => {
  test("all met: nothing listed", () => {
    expect(evaluateGates(ready)).toEqual([]);
  });

  test("every unmet condition is listed together", () => {
    expect(
      rules({
        release: { phase: ReleasePhase.BUILD_AND_TEST, approved: false, abandoned: true },
        changes: [{ changeId: "c-1", known: true, authorized: false, emergency: false }],
        environment: {
          name: "production",
          frozen: true,
          freezeReason: "peak",
          targetCiIds: [],
          takenOut: ["ci-old"],
          retired: ["ci-web"],
        },
        previousEnvironment: { name: "staging", packageSucceeded: false },
        artifacts: [
          { artifactId: "a-1", known: true, verified: false, quarantined: false, planned: API },
          { artifactId: "a-2", known: true, verified: true, quarantined: true, planned: API, registered: API },
          { artifactId: "a-3", known: false, verified: false, quarantined: false, planned: API },
          {
            artifactId: "a-4",
            known: true,
            verified: true,
            quarantined: false,
            planned: API,
            registered: { name: "api", version: "9.9.9" },
          },
        ],
        runningDeploymentId: "d-0",
      }),
    ).toEqual([
      "gate.release_abandoned",
      "gate.release_approved",
      "gate.release_phase",
      "gate.change_authorized",
      "gate.change_scheduled",
      "gate.environment_frozen",
      "gate.promotion_order",
      "gate.artifact_verified",
      "gate.artifact_quarantined",
      "gate.artifact_known",
      "gate.artifact_identity",
      "gate.plan_targets",
      "gate.target_retired",
      "gate.environment_busy",
    ]);
  });

  test("a plan deploying to targets the CMDB retired names them, the first five and how many more", () => {
    const retired = Array.from({ length: 6 }, (_, i) => `ci-${i + 1}`);
    const [one] = evaluateGates({ ...ready, environment: { ...ready.environment, retired: ["ci-web"] } });
    expect(one).toMatchObject({ rule: "gate.target_retired", subject: "production" });
    expect(one?.description).toBe(
      "the plan deploys to a target the CMDB lists as retired (ci-web): take it out of production and plan the deployment again",
    );
    const [many] = evaluateGates({ ...ready, environment: { ...ready.environment, retired } });
    expect(many?.description).toContain(
      "6 targets the CMDB lists as retired (ci-1, ci-2, ci-3, ci-4, ci-5, and 1 more): take them out of production",
    );
  });

  test("a plan deploying to targets the environment no longer has names them, the first five and how many more", () => {
    const takenOut = Array.from({ length: 7 }, (_, i) => `ci-${i + 1}`);
    const [one] = evaluateGates({ ...ready, environment: { ...ready.environment, takenOut: ["ci-old"] } });
    expect(one).toMatchObject({ rule: "gate.plan_targets", subject: "production" });
    expect(one?.description).toContain(
      "a target no longer where it deploys them in production (taken out, or moved to another colour: ci-old)",
    );
    const [many] = evaluateGates({ ...ready, environment: { ...ready.environment, takenOut } });
    expect(many?.description).toContain(
      "7 targets no longer where it deploys them in production (taken out, or moved to another colour: ci-1, ci-2, ci-3, ci-4, ci-5, and 2 more)",
    );
  });

  test("a change gates the deployments to the environments it names (none: production), not those before them", () => {
    const change = ready.changes[0] as GateFacts["changes"][0];
    // Not authorized yet, its window hours ahead: the production change of a release still in test.
    const ahead = { start: new Date("2031-03-01T20:00:00Z"), end: new Date("2031-03-01T22:00:00Z") };
    const pending = { ...change, authorized: false, window: ahead };
    const at = (name: string, production: boolean) => ({ ...ready.environment, name, production });
    const to = (environments: string[] | undefined, environment: GateFacts["environment"]) =>
      rules({ changes: [{ ...pending, environments }], environment });
    expect(to(["production"], at("test", false))).toEqual([]);
    expect(to([], at("test", false))).toEqual([]);
    expect(to(["production"], at("production", true))).toEqual(["gate.change_authorized", "gate.change_window"]);
    expect(to([], at("production", true))).toEqual(["gate.change_authorized", "gate.change_window"]);
    expect(to(["test"], at("test", false))).toEqual(["gate.change_authorized", "gate.change_window"]);
    // Not heard of since the service kept them: it gates every environment, as before.
    expect(to(undefined, at("test", false))).toEqual(["gate.change_authorized", "gate.change_window"]);
    // Cancelled, it refuses everywhere: it no longer covers the release.
    expect(
      rules({
        changes: [{ ...pending, environments: ["production"], cancelled: true }],
        environment: at("test", false),
      }),
    ).toEqual(["gate.change_cancelled"]);
  });

  test("a cancelled change refuses the start on its own account, whatever else it was", () => {
    const [change] = ready.changes;
    // Production is then left with no change: unlinking the cancelled one would not do.
    expect(rules({ changes: [{ ...(change as GateFacts["changes"][0]), cancelled: true }] })).toEqual([
      "gate.change_required",
      "gate.change_cancelled",
    ]);
  });

  test("a production deployment needs a linked change that covers it; other environments do not", () => {
    const change = ready.changes[0] as GateFacts["changes"][0];
    const at = (name: string, production: boolean) => ({ ...ready.environment, name, production });
    expect(rules({ changes: [] })).toEqual(["gate.change_required"]);
    expect(evaluateGates({ ...ready, changes: [] })[0]).toMatchObject({
      subject: "production",
      description: expect.stringContaining("needs a change request covering it"),
    });
    expect(rules({ changes: [], environment: at("test", false) })).toEqual([]);
    // A change for test only covers test.
    const forTest = { ...change, environments: ["test"] };
    expect(rules({ changes: [forTest] })).toEqual(["gate.change_required"]);
    expect(rules({ changes: [forTest], environment: at("test", false) })).toEqual([]);
    expect(rules({ changes: [forTest, { ...change, changeId: "c-2", environments: [] }] })).toEqual([]);
    // One not heard of yet is refused as unknown, not as missing.
    expect(rules({ changes: [{ ...change, known: false }] })).toEqual(["gate.change_known"]);
  });

  test("a change the plan names that the release does not list is refused and covers nothing; told only of a known release", () => {
    const change = ready.changes[0] as GateFacts["changes"][0];
    const outside = { ...change, planned: true, outsideRelease: true, emergency: true };
    expect(rules({ changes: [outside] })).toEqual(["gate.change_linked", "gate.change_required"]);
    expect(evaluateGates({ ...ready, changes: [outside] })[0]).toMatchObject({
      subject: change.changeId,
      description: expect.stringContaining(ready.releaseId),
    });
    expect(rules({ changes: [outside, { ...change, changeId: "c-2" }] })).toEqual(["gate.change_linked"]);
    // Nor does it let a freeze be overridden.
    const frozen = { ...ready.environment, frozen: true };
    const override = { justification: "INC-1", byChangeManager: true };
    expect(
      rules({ changes: [outside, { ...change, changeId: "c-2" }], environment: frozen, freezeOverride: override }),
    ).toEqual(["gate.change_linked", "gate.environment_frozen"]);
    expect(rules({ changes: [outside], release: undefined })).toEqual(["gate.release_known"]);
  });

  test("a change that failed or was closed covers nothing: refused when the plan names it or no other linked change is open", () => {
    const change = ready.changes[0] as GateFacts["changes"][0];
    for (const ended of ["FAILED", "CLOSED"]) {
      expect(rules({ changes: [{ ...change, ended }] })).toEqual(["gate.change_required", "gate.change_over"]);
      // Left linked to the release beside a new change: passed over, unless the plan names it.
      const another = { ...change, changeId: "c-2" };
      expect(rules({ changes: [{ ...change, ended }, another] })).toEqual([]);
      expect(rules({ changes: [{ ...change, ended, planned: true }, another] })).toEqual(["gate.change_over"]);
      expect(
        rules({
          changes: [
            { ...change, ended },
            { ...another, cancelled: true },
          ],
        }),
      ).toEqual(["gate.change_required", "gate.change_over", "gate.change_cancelled"]);
    }
  });

  test("only what the release's frozen package holds goes out, when the package is known and holds any", () => {
    const release = ready.release as NonNullable<GateFacts["release"]>;
    expect(rules({ release: { ...release, package: ["a-1"] } })).toEqual([]);
    const foreign = evaluateGates({ ...ready, release: { ...release, package: ["a-9"] } });
    expect(foreign).toEqual([
      { rule: "gate.release_package", subject: "a-1", description: "api 2.0.0 is not in the release's package" },
    ]);
    expect(rules({ release: { ...release, package: [] } })).toEqual([]);
    expect(rules({ release: { ...release, package: ["A-1"] } })).toEqual([]);
  });

  test("a change window that does not contain now", () => {
    const window = { start: new Date("2031-03-02T09:00:00Z"), end: new Date("2031-03-02T11:00:00Z") };
    const changes = [{ changeId: "c-1", known: true, authorized: true, emergency: false, window }];
    expect(rules({ changes })).toEqual(["gate.change_window"]);
  });

  test("a freeze yields only to a change-manager's justified override for an authorized emergency change", () => {
    const frozen = { name: "production", frozen: true, freezeReason: "peak", targetCiIds: [] };
    const emergency = [{ ...(ready.changes[0] as GateFacts["changes"][number]), emergency: true }];
    const override = { justification: "INC-42", byChangeManager: true };
    expect(rules({ environment: frozen, changes: emergency, freezeOverride: override })).toEqual([]);
    expect(rules({ environment: frozen, freezeOverride: override })).toEqual(["gate.environment_frozen"]);
    expect(
      rules({ environment: frozen, changes: emergency, freezeOverride: { ...override, byChangeManager: false } }),
    ).toEqual(["gate.environment_frozen"]);
    expect(rules({ environment: frozen, changes: emergency })).toEqual(["gate.environment_frozen"]);
    // An emergency change that failed overrides nothing (and covers nothing).
    const failed = [{ ...(emergency[0] as GateFacts["changes"][number]), ended: "FAILED" }];
    expect(rules({ environment: frozen, changes: failed, freezeOverride: override })).toEqual([
      "gate.change_required",
      "gate.change_over",
      "gate.environment_frozen",
    ]);
  });

  describe("change-calendar freeze windows", () => {
    const window = (scope: Partial<FreezeWindowFact["scope"]>, overrides: Partial<FreezeWindowFact> = {}) => ({
      freezeWindowId: `fw-${JSON.stringify(scope)}`,
      name: "quarter end",
      reason: "books close",
      start: new Date("2031-03-01T08:00:00Z"),
      end: new Date("2031-03-01T12:00:00Z"),
      scope: { all: false, ciIds: [], environments: [], ...scope },
      ...overrides,
    });
    const subjects = (facts: Partial<GateFacts>) =>
      evaluateGates({ ...ready, ...facts }).map((detail) => [detail.rule, detail.subject]);

    test("a window in force applies by scope: all, the environment, or one of the deployment's targets", () => {
      const all = window({ all: true });
      const environment = window({ environments: ["staging", "production"] });
      const target = window({ ciIds: ["ci-db"] });
      expect(subjects({ freezeWindows: [all, environment, target] })).toEqual([
        ["gate.freeze_window", all.freezeWindowId],
        ["gate.freeze_window", environment.freezeWindowId],
        ["gate.freeze_window", target.freezeWindowId],
      ]);
      // Targets compared without case, as the other gates compare them.
      const capitals = { ...ready.environment, targetCiIds: ["CI-DB"] };
      expect(subjects({ environment: capitals, freezeWindows: [target] })).toEqual([
        ["gate.freeze_window", target.freezeWindowId],
      ]);
      expect(subjects({ freezeWindows: [window({ ciIds: ["Ci-Web"] })] })).toHaveLength(1);
    });

    test("a window for other environments or CIs, or not containing now, does not apply", () => {
      const windows = [
        window({ environments: ["staging"] }),
        window({ ciIds: ["ci-elsewhere"] }),
        window({ all: true }, { freezeWindowId: "over", end: now }),
        window({ all: true }, { freezeWindowId: "later", start: new Date("2031-03-01T10:00:01Z") }),
      ];
      expect(rules({ freezeWindows: windows })).toEqual([]);
      expect(freezeInForce({ ...ready, freezeWindows: windows })).toBe(false);
    });

    test("the environment's flag and the windows are listed together, and one override covers them all", () => {
      const frozen = { ...ready.environment, frozen: true, freezeReason: "peak" };
      const freezeWindows = [window({ all: true }), window({ ciIds: ["ci-web"] })];
      expect(rules({ environment: frozen, freezeWindows })).toEqual([
        "gate.environment_frozen",
        "gate.freeze_window",
        "gate.freeze_window",
      ]);
      const emergency = [{ ...(ready.changes[0] as GateFacts["changes"][number]), emergency: true }];
      const override = { justification: "INC-42", byChangeManager: true };
      expect(rules({ environment: frozen, freezeWindows, changes: emergency, freezeOverride: override })).toEqual([]);
      expect(rules({ freezeWindows, changes: emergency, freezeOverride: override })).toEqual([]);
      expect(freezeWindowsInForce({ ...ready, freezeWindows }).map((w) => w.freezeWindowId)).toEqual(
        freezeWindows.map((w) => w.freezeWindowId),
      );
    });

    test("a window yields only to a change-manager's justified override for an authorized emergency change", () => {
      const freezeWindows = [window({ environments: ["production"] })];
      const emergency = [{ ...(ready.changes[0] as GateFacts["changes"][number]), emergency: true }];
      const override = { justification: "INC-42", byChangeManager: true };
      expect(rules({ freezeWindows, freezeOverride: override })).toEqual(["gate.freeze_window"]);
      expect(
        rules({ freezeWindows, changes: emergency, freezeOverride: { ...override, byChangeManager: false } }),
      ).toEqual(["gate.freeze_window"]);
      expect(rules({ freezeWindows, changes: emergency })).toEqual(["gate.freeze_window"]);
      const unauthorized = [{ ...(emergency[0] as GateFacts["changes"][number]), authorized: false }];
      expect(rules({ freezeWindows, changes: unauthorized, freezeOverride: override })).toEqual([
        "gate.change_authorized",
        "gate.freeze_window",
      ]);
    });
  });

  test("an unknown release, and the first environment of the order", () => {
    expect(rules({ release: undefined, previousEnvironment: undefined })).toEqual(["gate.release_known"]);
  });
});

describe("environments", () => {
  const definition: EnvironmentDefinition = {
    name: "production",
    promotionRank: 4,
    promotesFrom: "staging",
    targetGroups: [create(TargetGroupSchema, { name: "rest", ciIds: ["ci-1"] })],
    protection: create(ProtectionPolicySchema, { approvalGroup: "prod", quorum: 2 }),
    executorLabels: ["prod"],
  };
  const fold = (events: ReturnType<typeof decideEnvironment>, state: EnvironmentState = { environment: undefined }) =>
    events.reduce(evolveEnvironment, state);

  test("registered once, changed, frozen and thawed", () => {
    const registered = fold(
      decideEnvironment(
        { kind: "registerEnvironment", definition, upstream: ["staging"], elsewhere: [] },
        { environment: undefined },
      ),
    );
    expect(registered.environment).toMatchObject({ name: "production", promotesFrom: "staging", frozen: false });
    expect(
      refusal(() =>
        decideEnvironment({ kind: "registerEnvironment", definition, upstream: [], elsewhere: [] }, registered),
      ).code,
    ).toBe("ALREADY_EXISTS");
    const frozen = fold(decideEnvironment({ kind: "setFreeze", frozen: true, reason: "peak" }, registered), registered);
    expect(frozen.environment).toMatchObject({ frozen: true, freezeReason: "peak" });
    const changed = fold(
      decideEnvironment(
        {
          kind: "changeEnvironment",
          definition: { ...definition, executorLabels: [] },
          reason: "",
          upstream: ["staging"],
          elsewhere: [],
        },
        frozen,
      ),
      frozen,
    );
    // A definition change keeps the freeze: freezing is its own command.
    expect(changed.environment).toMatchObject({ frozen: true, executorLabels: [] });
  });

  test("a CMDB id in upper and lower case is one target: in two groups, or twice in one, it is refused", () => {
    const id = "0b3c1e7a-5d2f-4c8e-9a61-7f0e2d4b8c19";
    for (const targetGroups of [
      [
        create(TargetGroupSchema, { name: "a", ciIds: [id] }),
        create(TargetGroupSchema, { name: "b", ciIds: [id.toUpperCase()] }),
      ],
      [create(TargetGroupSchema, { name: "a", ciIds: [id, id.toUpperCase()] })],
    ]) {
      const error = refusal(() =>
        decideEnvironment(
          {
            kind: "registerEnvironment",
            definition: { ...definition, targetGroups, promotesFrom: "" },
            upstream: [],
            elsewhere: [],
          },
          { environment: undefined },
        ),
      );
      expect(error.conditions.map((condition) => [condition.rule, condition.subject])).toEqual([
        ["environment.target_in_one_group", id.toUpperCase()],
      ]);
    }
  });

  test("a target another environment has is refused, naming that environment", () => {
    const error = refusal(() =>
      decideEnvironment(
        {
          kind: "registerEnvironment",
          definition: { ...definition, promotesFrom: "" },
          upstream: [],
          elsewhere: [{ ciId: "ci-1", environment: "staging" }],
        },
        { environment: undefined },
      ),
    );
    expect(error.conditions.map((condition) => [condition.rule, condition.subject, condition.description])).toEqual([
      [
        "environment.target_elsewhere",
        "ci-1",
        "target ci-1 is a target of environment staging: a host is deployed to by one environment",
      ],
    ]);
  });

  test("inconsistent definitions are refused with every problem", () => {
    const bad: EnvironmentDefinition = {
      ...definition,
      promotesFrom: "production",
      targetGroups: [
        create(TargetGroupSchema, { name: "a", ciIds: ["ci-1"] }),
        create(TargetGroupSchema, { name: "b", ciIds: ["ci-1"] }),
      ],
      protection: create(ProtectionPolicySchema, { quorum: 1 }),
    };
    const error = refusal(() =>
      decideEnvironment(
        { kind: "registerEnvironment", definition: bad, upstream: [], elsewhere: [] },
        { environment: undefined },
      ),
    );
    expect(error.conditions.map((condition) => condition.rule)).toEqual([
      "environment.target_in_one_group",
      "environment.promotes_from",
      "environment.protection_group",
    ]);
    // A quorum no board could reach would hold every deployment there for ever.
    const unreachable = {
      ...definition,
      protection: create(ProtectionPolicySchema, { approvalGroup: "cab", quorum: 101 }),
    };
    const quorum = refusal(() =>
      decideEnvironment(
        { kind: "registerEnvironment", definition: unreachable, upstream: ["staging"], elsewhere: [] },
        { environment: undefined },
      ),
    );
    expect(quorum.conditions.map((c) => [c.rule, c.description])).toEqual([
      ["environment.protection_quorum", "a protection quorum is at most 100"],
    ]);
    // staging promotes from test, test from production: production after staging closes a circle.
    const circle = refusal(() =>
      decideEnvironment(
        { kind: "registerEnvironment", definition, upstream: ["staging", "test", "production"], elsewhere: [] },
        { environment: undefined },
      ),
    );
    expect(circle.conditions.map((c) => [c.rule, c.description])).toEqual([
      [
        "environment.promotion_cycle",
        "the promotion order would run in a circle: production → staging → test → production",
      ],
    ]);
    // Following an environment not registered: no package could ever succeed there first.
    const unknown = refusal(() =>
      decideEnvironment(
        { kind: "registerEnvironment", definition, upstream: [], elsewhere: [] },
        { environment: undefined },
      ),
    );
    expect(unknown.conditions.map((c) => [c.rule, c.subject])).toEqual([
      ["environment.promotes_from_unknown", "staging"],
    ]);
    expect(
      refusal(() => decideEnvironment({ kind: "setFreeze", frozen: true, reason: "" }, { environment: undefined }))
        .code,
    ).toBe("NOT_FOUND");
  });
});
