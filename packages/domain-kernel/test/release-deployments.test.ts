// The kernel's release fold and gates (what read sides apply) on the deployment outcomes the
// release records and on a linked change rejected or cancelled after the release's approval.
import { clone, create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import { DeploymentOutcome, LogEntryKind, ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { changeStateName, fold, gateConditions, STANDARD_MODEL } from "../src/release/index.js";

const releaseId = "0b3c1e7a-5d2f-4c8e-9a61-7f0e2d4b8c19";
const changeRequestId = "5f1d2c3b-8a7e-4d6c-9b0a-1e2f3a4b5c6d";
const registered = (phase: ReleasePhase) =>
  create(ev.ReleaseRegisteredSchema, { releaseId, phase, phaseEntry: 1, model: STANDARD_MODEL });
const deployment = (outcome: DeploymentOutcome) => ({
  deploymentId: "d-1",
  environment: "production",
  outcome,
  production: true,
});

test("deployments and deviations are folded into the release and its log", () => {
  const { release } = fold([
    registered(ReleasePhase.DEPLOYMENT),
    create(ev.ReleaseDeviationRecordedSchema, {
      releaseId,
      deployment: deployment(DeploymentOutcome.FAILED),
      entry: { entryId: "e-1", kind: LogEntryKind.DEVIATION, text: "deployment d-1 to production failed" },
    }),
    create(ev.ReleaseDeploymentRecordedSchema, { releaseId, deployment: deployment(DeploymentOutcome.SUCCEEDED) }),
  ]);
  expect(release?.deployments.map((d) => d.outcome)).toEqual([DeploymentOutcome.FAILED, DeploymentOutcome.SUCCEEDED]);
  expect(release?.log.map((l) => [l.kind, l.text])).toEqual([
    [LogEntryKind.DEVIATION, "deployment d-1 to production failed"],
  ]);
});

test("a linked change rejected after the approval phase closes the later gates", () => {
  const linked = create(ev.ReleaseChangeRequestLinkedSchema, { releaseId, changeRequestId });
  const unmet = (phase: ReleasePhase, state: string) =>
    gateConditions(fold([registered(phase), linked]), [{ changeRequestId, state }])
      .filter((c) => !c.met)
      .map((c) => c.rule);
  expect(unmet(ReleasePhase.DEPLOYMENT, "REJECTED")).toEqual(["gate.linked_change_rejected"]);
  expect(unmet(ReleasePhase.DEPLOYMENT, "CANCELLED")).toEqual(["gate.linked_change_cancelled"]);
  expect(unmet(ReleasePhase.DEPLOYMENT, "FAILED")).toEqual([]);
  expect(unmet(ReleasePhase.APPROVAL, "REJECTED")).toEqual(["gate.approval_requested", "gate.linked_change_state"]);
});

test("a model's change states count in their short and full enum names alike", () => {
  const linked = create(ev.ReleaseChangeRequestLinkedSchema, { releaseId, changeRequestId });
  const spelled = (names: string[]) => {
    const model = clone(ReleaseModelSchema, STANDARD_MODEL);
    for (const phase of model.phases) if (phase.linkedChangeStates.length) phase.linkedChangeStates = names;
    const release = create(ev.ReleaseRegisteredSchema, {
      releaseId,
      phase: ReleasePhase.APPROVAL,
      phaseEntry: 1,
      model,
    });
    return gateConditions(fold([release, linked]), [{ changeRequestId, state: "AUTHORIZED" }]).find(
      (c) => c.rule === "gate.linked_change_state",
    )?.met;
  };
  expect(spelled(["AUTHORIZED"])).toBe(true);
  expect(spelled(["CHANGE_STATE_AUTHORIZED"])).toBe(true);
  expect(spelled(["CHANGE_STATE_CLOSED"])).toBe(false);
  expect([
    changeStateName("CHANGE_STATE_SCHEDULED"),
    changeStateName("SCHEDULED"),
    changeStateName("UNSPECIFIED"),
  ]).toEqual(["SCHEDULED", "SCHEDULED", undefined]);
});
