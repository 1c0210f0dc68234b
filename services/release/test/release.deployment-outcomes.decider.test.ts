// The release's reactions to deployment outcomes, decided on the release's own state.

import { clone, create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import {
  ApprovalRequirementSchema,
  type ReleaseModel,
  ReleaseModelSchema,
} from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import {
  DeploymentOutcome,
  LogEntryKind,
  ReleasePhase,
  ReleaseStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { deciderSpec } from "@rdm/testkit";
import { EMERGENCY_MODEL, STANDARD_MODEL } from "../src/domain/models.js";
import { notificationsFor } from "../src/domain/notifications.js";
import {
  type DecisionContext,
  type DeploymentOutcomeReport,
  decide,
  evolve,
  fold,
  initialState,
  type ReleaseCommand,
  type ReleaseEvent,
  type ReleaseState,
} from "../src/domain/release.js";

const RELEASE_ID = "0b3c1e7a-5d2f-4c8e-9a61-7f0e2d4b8c19";
const NOW = new Date("2026-05-04T10:00:00Z");
const DEPLOYED_AT = new Date("2026-05-04T09:58:00Z");

const spec = deciderSpec({
  decide,
  evolve,
  initialState,
  react: (decided: ReleaseEvent[], before: ReleaseState, ctx: DecisionContext) =>
    notificationsFor(decided, (prefix) => fold(prefix, before), ctx),
});

let ids = 0;
const ctx = (): DecisionContext => ({
  actor: "rdm-deployment",
  groups: [],
  now: NOW,
  newId: () => `00000000-0000-4000-8000-${String(++ids).padStart(12, "0")}`,
});

/** A release registered straight into `phase` (a history shortened to what these rules read). */
const registeredIn = (phase: ReleasePhase, model: ReleaseModel = STANDARD_MODEL): ReleaseEvent =>
  create(ev.ReleaseRegisteredSchema, {
    releaseId: RELEASE_ID,
    key: "REL-2026-0100",
    title: "Checkout 7.1",
    owner: "olivia",
    coordinator: "carl",
    stakeholders: ["sre-checkout"],
    phase,
    phaseEntry: 6,
    model,
  });

const outcome = (overrides: Partial<DeploymentOutcomeReport> = {}): ReleaseCommand => ({
  kind: "recordDeploymentOutcome",
  deployment: {
    deploymentId: "d-prod-1",
    environment: "production",
    outcome: DeploymentOutcome.SUCCEEDED,
    production: true,
    reason: "",
    occurredAt: DEPLOYED_AT,
    ...overrides,
  },
});

const types = (events: ReleaseEvent[]) => events.map((e) => e.$typeName.replace("rdm.release.v1.", ""));
const after = (given: ReleaseEvent[], command: ReleaseCommand) =>
  fold(spec.given(given).when(command, ctx()).events(), fold(given));

describe("a deployment succeeded", () => {
  it("in production: recorded, the release moves to VERIFICATION with its tasks, the owner is told", () => {
    spec
      .given([registeredIn(ReleasePhase.DEPLOYMENT)])
      .when(outcome(), ctx())
      .then((events, state) => {
        expect(types(events)).toEqual([
          "ReleaseDeploymentRecorded",
          "ReleasePhaseAdvanced",
          "ReleaseTaskAdded",
          "ReleaseNotificationRequested",
          "ReleaseNotificationRequested",
        ]);
        expect(state.release?.phase).toBe(ReleasePhase.VERIFICATION);
        expect(state.release?.phaseEntry).toBe(7);
        expect(state.release?.deployments).toEqual([
          expect.objectContaining({
            deploymentId: "d-prod-1",
            environment: "production",
            outcome: DeploymentOutcome.SUCCEEDED,
            production: true,
          }),
        ]);
        expect(state.release?.tasks.map((t) => t.name)).toEqual(["Verify the service"]);
        const notified = events.filter((e) => e.$typeName === "rdm.release.v1.ReleaseNotificationRequested");
        expect(notified.map((n) => (n as ev.ReleaseNotificationRequested).trigger)).toEqual([
          "rdm.release.v1.ReleaseDeploymentRecorded",
          "rdm.release.v1.ReleasePhaseAdvanced",
        ]);
      });
  });

  it("in production under the emergency model: the release moves to the phase that model names (REVIEW)", () => {
    const state = after([registeredIn(ReleasePhase.DEPLOYMENT, EMERGENCY_MODEL)], outcome());
    expect(state.release?.phase).toBe(ReleasePhase.REVIEW);
  });

  it("before production: recorded only, no phase move and no notification", () => {
    spec
      .given([registeredIn(ReleasePhase.DEPLOYMENT)])
      .when(outcome({ environment: "test", production: false, deploymentId: "d-test-1" }), ctx())
      .then((events, state) => {
        expect(types(events)).toEqual(["ReleaseDeploymentRecorded"]);
        expect(state.release?.phase).toBe(ReleasePhase.DEPLOYMENT);
      });
  });

  it("in production while the release is past its deployment phase: recorded, the phase stays", () => {
    const state = after([registeredIn(ReleasePhase.VERIFICATION)], outcome());
    expect(state.release?.phase).toBe(ReleasePhase.VERIFICATION);
    expect(state.release?.deployments).toHaveLength(1);
  });

  it("a second time (a redelivered or replayed event): nothing", () => {
    const first = spec
      .given([registeredIn(ReleasePhase.DEPLOYMENT)])
      .when(outcome(), ctx())
      .events();
    spec
      .given([registeredIn(ReleasePhase.DEPLOYMENT), ...first])
      .when(outcome(), ctx())
      .then([]);
  });

  it("for a release that does not exist: refused", () => {
    spec.given([]).when(outcome(), ctx()).thenFails("release.exists", "NOT_FOUND");
  });
});

describe("a deployment failed or was rolled back", () => {
  const failed = outcome({ outcome: DeploymentOutcome.FAILED, reason: "verification failed: error rate 7%" });
  const rolledBack = outcome({ outcome: DeploymentOutcome.ROLLED_BACK, reason: "verification failed: error rate 7%" });

  it("records a deviation in the log, told to the owner and the coordinator; the release stays", () => {
    spec
      .given([registeredIn(ReleasePhase.VERIFICATION)])
      .when(failed, ctx())
      .then((events, state) => {
        expect(types(events)).toEqual(["ReleaseDeviationRecorded", "ReleaseNotificationRequested"]);
        const notification = events[1] as ev.ReleaseNotificationRequested;
        expect(notification.recipients).toEqual(["olivia", "carl"]);
        expect(notification.trigger).toBe("rdm.release.v1.ReleaseDeviationRecorded");
        expect(state.release?.phase).toBe(ReleasePhase.VERIFICATION);
        expect(state.release?.status).toBe(ReleaseStatus.ACTIVE);
        expect(state.release?.log).toEqual([
          expect.objectContaining({
            kind: LogEntryKind.DEVIATION,
            text: "deployment d-prod-1 to production (production) failed: verification failed: error rate 7%",
            recordedBy: "rdm-deployment",
          }),
        ]);
      });
  });

  it("the failure and then the rollback of one deployment: two deviations, each once", () => {
    const first = spec
      .given([registeredIn(ReleasePhase.DEPLOYMENT)])
      .when(failed, ctx())
      .events();
    const given = [registeredIn(ReleasePhase.DEPLOYMENT), ...first];
    const second = spec.given(given).when(rolledBack, ctx()).events();
    const state = fold([...given, ...second]);
    expect(state.release?.deployments.map((d) => d.outcome)).toEqual([
      DeploymentOutcome.FAILED,
      DeploymentOutcome.ROLLED_BACK,
    ]);
    expect(state.release?.log.map((l) => l.text)).toEqual([
      "deployment d-prod-1 to production (production) failed: verification failed: error rate 7%",
      "deployment d-prod-1 to production (production) was rolled back: verification failed: error rate 7%",
    ]);
    spec
      .given([...given, ...second])
      .when(rolledBack, ctx())
      .then([]);
  });

  it("a failure outside production never moves the release", () => {
    const state = after(
      [registeredIn(ReleasePhase.DEPLOYMENT)],
      outcome({ environment: "test", production: false, outcome: DeploymentOutcome.FAILED, reason: "smoke test" }),
    );
    expect(state.release?.phase).toBe(ReleasePhase.DEPLOYMENT);
    expect(state.release?.log[0]?.text).toBe("deployment d-prod-1 to test failed: smoke test");
  });
});

describe("a linked change rejected after the release's approval", () => {
  const CHANGE = "5f1d2c3b-8a7e-4d6c-9b0a-1e2f3a4b5c6d";
  const linked = create(ev.ReleaseChangeRequestLinkedSchema, { releaseId: RELEASE_ID, changeRequestId: CHANGE });
  const advance = (state: string): ReleaseCommand => ({
    kind: "advancePhase",
    fromPhase: ReleasePhase.UNSPECIFIED,
    changes: [{ changeRequestId: CHANGE, state }],
  });

  it("closes the gates of the later phases again", () => {
    const refusal = spec
      .given([registeredIn(ReleasePhase.VERIFICATION), linked])
      .when(advance("REJECTED"), ctx())
      .thenFails("gate.not_met", "FAILED_PRECONDITION");
    expect(refusal.conditions).toEqual([
      expect.objectContaining({ rule: "gate.linked_change_rejected", subject: CHANGE }),
    ]);
  });

  it("a change that failed with its deployment does not keep the release from its review", () => {
    const state = after([registeredIn(ReleasePhase.VERIFICATION), linked], advance("FAILED"));
    expect(state.release?.phase).toBe(ReleasePhase.REVIEW);
  });

  it("in the approval phase the model's own change states rule alone (listed once)", () => {
    const refusal = spec
      .given([registeredIn(ReleasePhase.APPROVAL), linked])
      .when(advance("REJECTED"), ctx())
      .refusal();
    expect(refusal.conditions.map((c) => c.rule)).toEqual(["gate.approval_requested", "gate.linked_change_state"]);
  });
});

describe("a production success moves the release on only when it is the release's deployment as it stands", () => {
  const withPackage = [
    registeredIn(ReleasePhase.DEPLOYMENT),
    create(ev.ReleaseArtifactAttachedSchema, {
      releaseId: RELEASE_ID,
      artifact: { artifactId: "artifact-current", name: "checkout", version: "7.1.1" },
    }),
  ];

  it("of another package (started before a rework changed it): recorded, the release stays in DEPLOYMENT", () => {
    const stale = outcome({ deploymentId: "d-old", artifactIds: ["artifact-before-rework"] });
    const recorded = types(spec.given(withPackage).when(stale, ctx()).events());
    expect([recorded[0], recorded.includes("ReleasePhaseAdvanced")]).toEqual(["ReleaseDeploymentRecorded", false]);
    const current = outcome({ deploymentId: "d-new", artifactIds: ["artifact-current"] });
    expect(after(withPackage, current).release?.phase).toBe(ReleasePhase.VERIFICATION);
  });

  it("with an approval of the phase not granted: recorded, the release stays in DEPLOYMENT", () => {
    const model = clone(ReleaseModelSchema, STANDARD_MODEL);
    const deployment = model.phases.find((p) => p.phase === ReleasePhase.DEPLOYMENT);
    deployment?.approvals.push(create(ApprovalRequirementSchema, { approverGroup: "go-live", quorum: 1 }));
    const given = [registeredIn(ReleasePhase.DEPLOYMENT, model)];
    const recorded = types(spec.given(given).when(outcome(), ctx()).events());
    expect([recorded[0], recorded.includes("ReleasePhaseAdvanced")]).toEqual(["ReleaseDeploymentRecorded", false]);
    expect(after(given, outcome()).release?.phase).toBe(ReleasePhase.DEPLOYMENT);
  });
});

describe("the linked changes' states moved after a production success", () => {
  const CHANGE = "7a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6d";
  const model = clone(ReleaseModelSchema, STANDARD_MODEL);
  const deploymentPhase = model.phases.find((p) => p.phase === ReleasePhase.DEPLOYMENT);
  if (deploymentPhase) deploymentPhase.linkedChangeStates = ["IMPLEMENTED"];
  const given = [
    registeredIn(ReleasePhase.DEPLOYMENT, model),
    create(ev.ReleaseArtifactAttachedSchema, {
      releaseId: RELEASE_ID,
      artifact: { artifactId: "artifact-current", name: "checkout", version: "7.1.1" },
    }),
    create(ev.ReleaseChangeRequestLinkedSchema, { releaseId: RELEASE_ID, changeRequestId: CHANGE }),
  ];
  const success = (artifactId: string) =>
    outcome({ artifactIds: [artifactId], changes: [{ changeRequestId: CHANGE, state: "IMPLEMENTING" }] });
  const changesNow = (state: string): ReleaseCommand => ({
    kind: "moveOnAfterProduction",
    changes: [{ changeRequestId: CHANGE, state }],
  });
  const recorded = (artifactId: string) => [...given, ...spec.given(given).when(success(artifactId), ctx()).events()];

  it("the success waits for the change; once IMPLEMENTED, the release moves to VERIFICATION", () => {
    const history = recorded("artifact-current");
    expect(fold(history).release?.phase).toBe(ReleasePhase.DEPLOYMENT);
    expect(types(spec.given(history).when(changesNow("IMPLEMENTING"), ctx()).events())).toEqual([]);
    expect(after(history, changesNow("IMPLEMENTED")).release?.phase).toBe(ReleasePhase.VERIFICATION);
  });

  it("a success of another package (a rework since) moves nothing", () => {
    expect(
      types(spec.given(recorded("artifact-before-rework")).when(changesNow("IMPLEMENTED"), ctx()).events()),
    ).toEqual([]);
  });

  it("a success before a rework sent the release back, the package unchanged: nothing until it succeeds again", () => {
    const history = recorded("artifact-current");
    const reworked = [
      ...history,
      create(ev.ReleasePhaseReworkedSchema, {
        releaseId: RELEASE_ID,
        fromPhase: ReleasePhase.DEPLOYMENT,
        toPhase: ReleasePhase.BUILD_AND_TEST,
        phaseEntry: 7,
        reason: "verification found a regression",
      }),
      create(ev.ReleasePhaseAdvancedSchema, {
        releaseId: RELEASE_ID,
        fromPhase: ReleasePhase.BUILD_AND_TEST,
        toPhase: ReleasePhase.DEPLOYMENT,
        phaseEntry: 8,
      }),
    ];
    expect(fold(reworked).release?.phase).toBe(ReleasePhase.DEPLOYMENT);
    expect(types(spec.given(reworked).when(changesNow("IMPLEMENTED"), ctx()).events())).toEqual([]);
  });

  it("no production success yet: nothing", () => {
    expect(types(spec.given(given).when(changesNow("IMPLEMENTED"), ctx()).events())).toEqual([]);
  });
});

describe("a linked change naming several production environments", () => {
  const CHANGE = "7a2b3c4d-5e6f-4a8b-9c0d-1e2f3a4b5c6e";
  const given = [
    registeredIn(ReleasePhase.DEPLOYMENT),
    create(ev.ReleaseChangeRequestLinkedSchema, { releaseId: RELEASE_ID, changeRequestId: CHANGE }),
  ];
  const change = (state: string) => [
    { changeRequestId: CHANGE, state, productionEnvironments: ["prod-eu", "prod-us"] },
  ];
  const succeededIn = (environment: string, state = "IMPLEMENTING") =>
    outcome({ deploymentId: `d-${environment}`, environment, changes: change(state) });

  it("keeps the release deploying until the package succeeded in each; the last success moves it on", () => {
    const first = [...given, ...spec.given(given).when(succeededIn("prod-eu"), ctx()).events()];
    expect(fold(first).release?.phase).toBe(ReleasePhase.DEPLOYMENT);
    // The change's state moving meanwhile does not end the wait either.
    expect(
      types(
        spec
          .given(first)
          .when({ kind: "moveOnAfterProduction", changes: change("IMPLEMENTING") }, ctx())
          .events(),
      ),
    ).toEqual([]);
    expect(after(first, succeededIn("prod-us")).release?.phase).toBe(ReleasePhase.VERIFICATION);
  });

  it("a change no longer open (failed, implemented, closed) is waited for no more", () => {
    const first = [...given, ...spec.given(given).when(succeededIn("prod-eu"), ctx()).events()];
    // (A cancelled one holds the release on its own rule: gate.linked_change_cancelled.)
    for (const state of ["FAILED", "IMPLEMENTED", "CLOSED"]) {
      expect(after(first, { kind: "moveOnAfterProduction", changes: change(state) }).release?.phase).toBe(
        ReleasePhase.VERIFICATION,
      );
    }
  });

  it("unlinking the change that holds the release moves it on; an unlink told no states re-checks nothing", () => {
    const OTHER = "8b3c4d5e-6f7a-4b9c-8d1e-2f3a4b5c6d7f";
    const first = [
      ...given,
      ...spec.given(given).when(succeededIn("prod-eu", "AUTHORIZED"), ctx()).events(),
      create(ev.ReleaseChangeRequestLinkedSchema, { releaseId: RELEASE_ID, changeRequestId: OTHER }),
    ];
    expect(fold(first).release?.phase).toBe(ReleasePhase.DEPLOYMENT);
    const states = [
      ...change("AUTHORIZED"),
      { changeRequestId: OTHER, state: "IMPLEMENTED", productionEnvironments: [] },
    ];
    const unlink = { kind: "unlinkChangeRequest" as const, changeRequestId: CHANGE, changeState: "AUTHORIZED" };
    const moved = after(first, { ...unlink, changes: states }).release;
    expect([moved?.phase, moved?.linkedChangeRequestIds]).toEqual([ReleasePhase.VERIFICATION, [OTHER]]);
    expect(types(spec.given(first).when(unlink, ctx()).events())).toEqual(["ReleaseChangeRequestUnlinked"]);
    // Unlinking a change that holds nothing leaves the held one holding.
    const held = after(first, { ...unlink, changeRequestId: OTHER, changes: states }).release;
    expect([held?.phase, held?.linkedChangeRequestIds]).toEqual([ReleasePhase.DEPLOYMENT, [CHANGE]]);
  });

  it("a change naming one production environment, or none, waits for nothing more", () => {
    const one = [{ changeRequestId: CHANGE, state: "IMPLEMENTING", productionEnvironments: ["prod-eu"] }];
    const none = [{ changeRequestId: CHANGE, state: "IMPLEMENTING", productionEnvironments: [] }];
    for (const changes of [one, none]) {
      const state = after(given, outcome({ environment: "prod-eu", changes }));
      expect(state.release?.phase).toBe(ReleasePhase.VERIFICATION);
    }
  });
});
