// What a deployment event asks of a linked change (the change consumer's reaction, before the
// change's decider): focused on the back-out of a change implemented before this version's rules.
import { create } from "@bufbuild/protobuf";
import { ChangeRequestSchema, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { DeploymentRolledBackSchema } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { PublishedStreams } from "@rdm/testkit";
import { reactionTo } from "../src/consumers/lifecycle-reactions.js";

const deployments = new PublishedStreams("executor-1");
const rolledBack = (environment: string, production: boolean) =>
  reactionTo(
    deployments.event("rdm/deployment", DeploymentRolledBackSchema, "d-1", {
      deploymentId: "d-1",
      releaseId: "r-1",
      environment,
      production,
      reason: "backing out",
    }),
  );
const implemented = (implementedEnvironments: string[]) =>
  create(ChangeRequestSchema, {
    changeRequestId: "c-1",
    state: ChangeState.IMPLEMENTED,
    environments: ["staging", "production"],
    implementedEnvironments,
  });
const kinds = (commands: { kind: string }[] | undefined) => commands?.map((command) => command.kind);

test("a back-out elsewhere than production leaves a change the first of its environments implemented before this version", () => {
  // Implemented by the old rule: its first environment's success, no environment recorded on the way.
  const old = implemented([]);
  expect(kinds(rolledBack("staging", false)?.toCommands(old))).toEqual([]);
  // Production's back-out fails it, as it fails any change production implemented.
  expect(kinds(rolledBack("production", true)?.toCommands(old))).toEqual(["failImplementation"]);
  // Implemented by this version's rule (its environments recorded): the decider tells whether this
  // deployment implemented it, so the reaction asks.
  expect(kinds(rolledBack("staging", false)?.toCommands(implemented(["staging"])))).toEqual(["failImplementation"]);
  // A change naming one environment: the deployment that implemented it is the one backed out.
  const single = create(ChangeRequestSchema, { ...old, environments: ["staging"] });
  expect(kinds(rolledBack("staging", false)?.toCommands(single))).toEqual(["failImplementation"]);
});
