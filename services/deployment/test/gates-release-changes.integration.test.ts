// The change gate covers every change linked to the release (from the release topic), not only
// the ones the deployment plan names: a change rejected after its release was approved stops
// the release's new deployments until it is authorized again or unlinked; one whose
// implementation is over (failed, reviewed, closed) stops them for good. And only what the
// release's frozen package holds goes out.
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestCancelledSchema,
  ChangeRequestClosedSchema,
  ChangeRequestFailedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestRejectedSchema,
  ChangeRequestScheduledSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentStrategyKind } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  ReleaseChangeRequestLinkedSchema,
  ReleaseChangeRequestUnlinkedSchema,
  ReleasePackageFrozenSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { artifact, groups, Harness, preconditionRules, rid, strategyOf, uniqueId, waitFor } from "./harness.js";

const harness = new Harness("deployment-release-changes");
type Client = Awaited<ReturnType<Harness["client"]>>;
let deployer: Client;

beforeAll(async () => {
  await harness.start("deployment_release_changes");
  deployer = await harness.client("dana", ["deployer", "release-manager"]);
});
afterAll(() => harness.stop());

async function plannedDeployment(releaseId: string, frozen = false) {
  const name = uniqueId("env");
  await deployer.registerEnvironment({
    ...rid(),
    environment: { name, promotionRank: 1, targetGroups: groups({ rest: [uniqueId("ci")] }) },
  });
  if (frozen) await deployer.setEnvironmentFreeze({ ...rid(), environment: name, frozen, reason: "hold" });
  const artifactId = randomUUID();
  await harness.artifact(artifactId);
  const { deployment } = await deployer.planDeployment({
    ...rid(),
    releaseId,
    environment: name,
    artifacts: [artifact(artifactId)],
    strategy: strategyOf(DeploymentStrategyKind.ALL_AT_ONCE),
  });
  return { deploymentId: deployment?.deploymentId as string, environment: name, artifactId };
}

/** A change the deployment service knows (authorized, scheduled), linked on the release side. */
async function linkedChange(releaseId: string): Promise<string> {
  const changeId = randomUUID();
  await harness.change(changeId);
  await harness.publish("release", ReleaseChangeRequestLinkedSchema, releaseId, {
    releaseId,
    changeRequestId: changeId,
  });
  return changeId;
}

const refusal = (deploymentId: string, expected: string[]) =>
  waitFor(
    async () => {
      const rules = await preconditionRules(deployer.startDeployment({ ...rid(), deploymentId }));
      return JSON.stringify(rules.sort()) === JSON.stringify(expected);
    },
    { timeoutMs: 30_000, description: `refusal ${expected.join(", ")}` },
  );

test("a change linked on the release side and rejected after its approval refuses the start; unlinked, it starts under the release's other change", async () => {
  const releaseId = randomUUID();
  await harness.releaseReady(releaseId);
  const changeId = await linkedChange(releaseId);
  // Frozen, so that nothing starts while the facts arrive: the freeze alone refuses once they are in.
  const { deploymentId, environment } = await plannedDeployment(releaseId, true);
  await refusal(deploymentId, ["gate.environment_frozen"]);
  await harness.publish("change", ChangeRequestRejectedSchema, changeId, { changeRequestId: changeId });
  await refusal(deploymentId, ["gate.change_authorized", "gate.environment_frozen"]);
  const { deployment } = await deployer.getDeployment({ deploymentId });
  expect(deployment?.linkedChangeIds).toEqual([]);

  await harness.publish("release", ReleaseChangeRequestUnlinkedSchema, releaseId, {
    releaseId,
    changeRequestId: changeId,
  });
  await refusal(deploymentId, ["gate.environment_frozen"]);
  await deployer.setEnvironmentFreeze({ ...rid(), environment, frozen: false, reason: "" });
  await deployer.startDeployment({ ...rid(), deploymentId });
});

test("a change linked on the release side and cancelled refuses the start as cancelled", async () => {
  const releaseId = randomUUID();
  await harness.releaseReady(releaseId);
  const changeId = await linkedChange(releaseId);
  const { deploymentId } = await plannedDeployment(releaseId, true);
  await refusal(deploymentId, ["gate.environment_frozen"]);
  await harness.publish("change", ChangeRequestCancelledSchema, changeId, {
    changeRequestId: changeId,
    reason: "superseded",
  });
  await refusal(deploymentId, ["gate.change_cancelled", "gate.environment_frozen"]);
});

test("a linked change the deployment service never heard of is listed as unknown", async () => {
  const releaseId = randomUUID();
  const changeId = randomUUID();
  await harness.releaseReady(releaseId);
  await harness.publish("release", ReleaseChangeRequestLinkedSchema, releaseId, {
    releaseId,
    changeRequestId: changeId.toUpperCase(),
  });
  const { deploymentId } = await plannedDeployment(releaseId, true);
  await refusal(deploymentId, ["gate.change_known", "gate.environment_frozen"]);
});

test("a change that failed or was closed covers no further deployment, unless another linked change is open", async () => {
  const releaseId = randomUUID();
  await harness.releaseReady(releaseId, { covered: false });
  const failed = await linkedChange(releaseId);
  const closed = await linkedChange(releaseId);
  const { deploymentId } = await plannedDeployment(releaseId, true);
  await refusal(deploymentId, ["gate.environment_frozen"]);
  await harness.publish("change", ChangeRequestFailedSchema, failed, {
    changeRequestId: failed,
    state: ChangeState.FAILED,
    reason: "deployment rolled back",
  });
  await harness.publish("change", ChangeRequestClosedSchema, closed, {
    changeRequestId: closed,
    state: ChangeState.CLOSED,
  });
  // Production is then left with no change to go out under.
  await refusal(deploymentId, [
    "gate.change_over",
    "gate.change_over",
    "gate.change_required",
    "gate.environment_frozen",
  ]);
  // A new change linked beside them covers the release's deployments; they stay linked.
  await linkedChange(releaseId);
  await refusal(deploymentId, ["gate.environment_frozen"]);
});

test("a deployment of artifacts outside the release's frozen package is refused, naming each", async () => {
  const releaseId = randomUUID();
  await harness.releaseReady(releaseId);
  const { deploymentId, artifactId } = await plannedDeployment(releaseId, true);
  await refusal(deploymentId, ["gate.environment_frozen"]);
  const freeze = (id: string) =>
    harness.publish("release", ReleasePackageFrozenSchema, releaseId, {
      releaseId,
      package: [{ artifactId: id, name: "api", version: "1.0.0" }],
    });
  await freeze(randomUUID());
  await refusal(deploymentId, ["gate.environment_frozen", "gate.release_package"]);
  // Each freeze (after a rework) says the whole package: the planned artifact, then another again.
  await freeze(artifactId.toUpperCase());
  await refusal(deploymentId, ["gate.environment_frozen"]);
  await freeze(randomUUID());
  await refusal(deploymentId, ["gate.environment_frozen", "gate.release_package"]);
});

test("a change naming production gates the production deployment, not the test one before it", async () => {
  const releaseId = randomUUID();
  await harness.releaseReady(releaseId);
  const [test, production] = [uniqueId("test"), uniqueId("prod")];
  for (const [name, promotesFrom] of [
    [test, ""],
    [production, test],
  ]) {
    await deployer.registerEnvironment({
      ...rid(),
      environment: { name, promotionRank: 1, promotesFrom, targetGroups: groups({ rest: [uniqueId("ci")] }) },
    });
  }
  // For production, linked to the release, not authorized yet, its window hours ahead.
  const changeId = randomUUID();
  const hours = (h: number) => timestampFromDate(new Date(Date.now() + h * 3_600_000));
  await harness.publish("change", ChangeRequestRaisedSchema, changeId, {
    changeRequestId: changeId,
    environments: [production],
  });
  await harness.publish("change", ChangeRequestScheduledSchema, changeId, {
    changeRequestId: changeId,
    environments: [production],
    window: create(TimeWindowSchema, { start: hours(4), end: hours(6) }),
  });
  await harness.publish("release", ReleaseChangeRequestLinkedSchema, releaseId, {
    releaseId,
    changeRequestId: changeId,
  });
  const artifactId = randomUUID();
  await harness.artifact(artifactId);
  const plan = async (environment: string) =>
    (
      await deployer.planDeployment({
        ...rid(),
        releaseId,
        environment,
        artifacts: [artifact(artifactId)],
        strategy: strategyOf(DeploymentStrategyKind.ALL_AT_ONCE),
      })
    ).deployment?.deploymentId as string;
  const [toTest, toProduction] = [await plan(test), await plan(production)];
  // Once the change is known, production waits for it (and for the package in test)...
  await refusal(toProduction, ["gate.change_authorized", "gate.change_window", "gate.promotion_order"]);
  // ...while test goes ahead of it.
  const { deployment } = await deployer.startDeployment({ ...rid(), deploymentId: toTest });
  expect(deployment?.state).toBe(DeploymentState.SCHEDULED);
});
