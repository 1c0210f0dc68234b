// The deployment plan fold: the step a failure came in is FAILED, the steps not run SKIPPED, as
// the deployment service has them.
import { create } from "@bufbuild/protobuf";
import {
  DeploymentFailedSchema,
  DeploymentPlannedSchema,
  DeploymentRollbackStartedSchema,
  DeploymentScheduledSchema,
  DeploymentStartedSchema,
  DeploymentStepClaimedSchema,
  DeploymentStepCompletedSchema,
  DeploymentStepSchema,
  StepKind,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { evolvePlan, progressOf } from "../src/projections/deployment-plans/plan.js";

test("a failed verification: its step FAILED, the one after SKIPPED, the rollback's steps ready to run", () => {
  const deploymentId = "d-1";
  const step = (index: number, kind: StepKind, rollback = false) =>
    create(DeploymentStepSchema, { index, kind, targetCiIds: ["h-1"], rollback });
  const events = [
    create(DeploymentPlannedSchema, {
      deploymentId,
      steps: [step(0, StepKind.DEPLOY), step(1, StepKind.VERIFY), step(2, StepKind.DEPLOY)],
    }),
    create(DeploymentStepClaimedSchema, { deploymentId, stepIndex: 0, fencingToken: 1n }),
    create(DeploymentStepCompletedSchema, { deploymentId, stepIndex: 0, fencingToken: 1n }),
    create(DeploymentStepClaimedSchema, { deploymentId, stepIndex: 1, fencingToken: 1n }),
    create(DeploymentFailedSchema, { deploymentId, reason: "verification smoke failed on h-1" }),
    create(DeploymentRollbackStartedSchema, { deploymentId, steps: [step(3, StepKind.ROLLBACK, true)] }),
  ];
  const plan = events.reduce(
    (folded, event) => evolvePlan(folded, event, new Date("2026-12-06T12:00:00Z")),
    undefined as ReturnType<typeof evolvePlan> | undefined,
  );
  expect(plan?.steps.map((s) => [s.index, s.state])).toEqual([
    [0, "COMPLETED"],
    [1, "FAILED"],
    [2, "SKIPPED"],
    [3, "READY"],
  ]);
  expect(plan && progressOf(plan).stepsFailed).toBe(1);
});

test("the changes a deployment implements: its start's, then those it began with; the freezes its start overrode", () => {
  const deploymentId = "d-2";
  const at = new Date("2026-12-06T12:00:00Z");
  const events = [
    create(DeploymentPlannedSchema, { deploymentId }),
    create(DeploymentScheduledSchema, {
      deploymentId,
      changeRequestIds: ["c-1", "c-2"],
      freezeOverrideJustification: "emergency fix",
      overriddenFreezeWindowIds: ["f-1"],
    }),
  ];
  const scheduled = events.reduce(
    (folded, event) => evolvePlan(folded, event, at),
    undefined as ReturnType<typeof evolvePlan> | undefined,
  );
  expect(scheduled?.changeRequestIds).toEqual(["c-1", "c-2"]);
  // The freeze its start overrode, which the calendar counts no conflict with.
  expect(scheduled?.overriddenFreezeWindowIds).toEqual(["f-1"]);
  // c-2 unlinked from the release before the deployment began.
  const begun = evolvePlan(scheduled, create(DeploymentStartedSchema, { deploymentId, changeRequestIds: ["c-1"] }), at);
  expect(begun?.changeRequestIds).toEqual(["c-1"]);
});
