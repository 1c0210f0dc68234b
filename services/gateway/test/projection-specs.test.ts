// One projectionSpec per gateway projection (releases, changes, configuration, deployments):
// given the events already projected, when one more arrives, then the view's rows are these.
import { randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { STANDARD_MODEL } from "@rdm/domain-kernel/release";
import { ChangeState, ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestCancelledSchema,
  ChangeRequestDetailsUpdatedSchema,
  ChangeRequestEnvironmentImplementedSchema,
  ChangeRequestFailedSchema,
  ChangeRequestImplementationAwaitingTasksSchema,
  ChangeRequestImplementedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestSubmittedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { CiLifecycleStatus, CiType, RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ConfigurationItemRegisteredSchema,
  ConfigurationItemUpdatedSchema,
  RelationshipAddedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { DeploymentStartedSchema, DeploymentSucceededSchema } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleasePlanningUpdatedSchema, ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { changeProjection } from "../src/projections/changes/projection.js";
import { configurationProjection } from "../src/projections/configuration/projection.js";
import { deploymentProjection } from "../src/projections/deployments/projection.js";
import { releaseProjection } from "../src/projections/releases/projection.js";
import { gatewayProjectionSpec, metadata, published } from "./projection-spec.js";

describe("releases", () => {
  const spec = gatewayProjectionSpec(releaseProjection);
  const releaseId = randomUUID();
  const registered = published(ReleaseRegisteredSchema, {
    metadata: metadata(1n),
    releaseId,
    key: "REL-2026-0001",
    title: "Payments 4.2",
    type: ReleaseType.MAJOR,
    owner: "olivia",
    phase: ReleasePhase.REGISTRATION,
    model: STANDARD_MODEL,
  });
  const planning = (version: bigint, title: string) =>
    published(ReleasePlanningUpdatedSchema, { metadata: metadata(version), releaseId, title, coordinator: "carl" });
  const overview = "SELECT key, title, coordinator, phase, status, version FROM release_view";

  test("a registration is folded by the kernel's evolve into the overview row", async () => {
    await spec
      .given([])
      .when(registered)
      .then(overview, [
        {
          key: "REL-2026-0001",
          title: "Payments 4.2",
          coordinator: "",
          phase: "REGISTRATION",
          status: "ACTIVE",
          version: "1",
        },
      ]);
  });

  test("a replayed event changes nothing: the overview keeps the version it reflects", async () => {
    await spec
      .given([registered, planning(2n, "Payments 4.3")])
      .when(planning(2n, "replayed"))
      .then(overview, [
        {
          key: "REL-2026-0001",
          title: "Payments 4.3",
          coordinator: "carl",
          phase: "REGISTRATION",
          status: "ACTIVE",
          version: "2",
        },
      ]);
  });

  test("every event is in the release's history once", async () => {
    await spec
      .given([registered, planning(2n, "Payments 4.3")])
      .when(planning(2n, "replayed"))
      .then("SELECT version, event_type FROM release_history ORDER BY version", [
        { version: "1", event_type: "rdm.release.v1.ReleaseRegistered" },
        { version: "2", event_type: "rdm.release.v1.ReleasePlanningUpdated" },
      ]);
  });
});

describe("changes", () => {
  const spec = gatewayProjectionSpec(changeProjection);
  const changeRequestId = randomUUID();
  const raised = (version: bigint, type: ChangeType, firstCommitTime?: Date) =>
    published(ChangeRequestRaisedSchema, {
      metadata: metadata(version),
      changeRequestId,
      state: ChangeState.DRAFT,
      key: "CHG-2026-0001",
      type,
      title: "Rotate keys",
      requester: "rita",
      ...(firstCommitTime ? { firstCommitTime: timestampFromDate(firstCommitTime) } : {}),
    });
  const submitted = published(ChangeRequestSubmittedSchema, {
    metadata: metadata(2n),
    changeRequestId,
    state: ChangeState.SUBMITTED,
  });
  const row = "SELECT key, type, state, board, version FROM change_view";

  test("a raised change goes to the board the kernel's change rules name for its type", async () => {
    await spec
      .given([])
      .when(raised(1n, ChangeType.EMERGENCY))
      .then(row, [{ key: "CHG-2026-0001", type: "EMERGENCY", state: "DRAFT", board: "ECAB", version: "1" }]);
    await spec
      .given([])
      .when(raised(1n, ChangeType.STANDARD))
      .then(row, [{ key: "CHG-2026-0001", type: "STANDARD", state: "DRAFT", board: "PRE_AUTHORIZED", version: "1" }]);
  });

  test("later events carry the state after them; a replay of an older one changes nothing", async () => {
    await spec
      .given([raised(1n, ChangeType.NORMAL), submitted])
      .when(raised(1n, ChangeType.NORMAL))
      .then(row, [{ key: "CHG-2026-0001", type: "NORMAL", state: "SUBMITTED", board: "CAB", version: "2" }]);
  });

  test("the first commit time is kept from the raise and replaced by an edit", async () => {
    const commits = "SELECT first_commit_time, version FROM change_view";
    const firstCommit = new Date("2026-02-20T08:00:00Z");
    const raisedWithCommit = raised(1n, ChangeType.NORMAL, firstCommit);
    await spec
      .given([])
      .when(raisedWithCommit)
      .then(commits, [{ first_commit_time: firstCommit, version: "1" }]);
    const edited = new Date("2026-02-18T08:00:00Z");
    await spec
      .given([raisedWithCommit])
      .when(
        published(ChangeRequestDetailsUpdatedSchema, {
          metadata: metadata(2n),
          changeRequestId,
          state: ChangeState.DRAFT,
          title: "Rotate keys",
          firstCommitTime: timestampFromDate(edited),
        }),
      )
      .then(commits, [{ first_commit_time: edited, version: "2" }]);
  });

  test("a cancellation keeps why and by whom, and a replay of it changes nothing", async () => {
    const cancelled = published(ChangeRequestCancelledSchema, {
      metadata: metadata(3n, "carl"),
      changeRequestId,
      state: ChangeState.CANCELLED,
      reason: "superseded",
      cancelledBy: "carl",
      previousState: ChangeState.SUBMITTED,
    });
    const cancellation = "SELECT state, cancellation_reason, cancelled_by, version FROM change_view";
    const expected = [{ state: "CANCELLED", cancellation_reason: "superseded", cancelled_by: "carl", version: "3" }];
    await spec
      .given([raised(1n, ChangeType.NORMAL), submitted])
      .when(cancelled)
      .then(cancellation, expected);
    await spec
      .given([raised(1n, ChangeType.NORMAL), submitted, cancelled])
      .when(submitted)
      .then(cancellation, expected);
  });

  test("a change awaiting its tasks after a deployment's success shows that deployment until it is implemented", async () => {
    const about = { changeRequestId, deploymentId: "d-7", environment: "production" };
    const awaiting = published(ChangeRequestImplementationAwaitingTasksSchema, {
      metadata: metadata(3n),
      ...about,
      state: ChangeState.IMPLEMENTING,
      openTaskIds: ["t-1"],
    });
    const columns = "SELECT state, awaiting_tasks_deployment_id, awaiting_tasks_environment FROM change_view";
    await spec
      .given([raised(1n, ChangeType.NORMAL), submitted])
      .when(awaiting)
      .then(columns, [
        { state: "IMPLEMENTING", awaiting_tasks_deployment_id: "d-7", awaiting_tasks_environment: "production" },
      ]);
    await spec
      .given([raised(1n, ChangeType.NORMAL), submitted, awaiting])
      .when(
        published(ChangeRequestImplementedSchema, { metadata: metadata(4n), ...about, state: ChangeState.IMPLEMENTED }),
      )
      .then(columns, [{ state: "IMPLEMENTED", awaiting_tasks_deployment_id: "", awaiting_tasks_environment: "" }]);
    await spec
      .given([raised(1n, ChangeType.NORMAL), submitted, awaiting])
      .when(
        published(ChangeRequestImplementedSchema, { metadata: metadata(4n), ...about, state: ChangeState.IMPLEMENTED }),
      )
      .then("SELECT implemented_by_deployment_id FROM change_view", [{ implemented_by_deployment_id: "d-7" }]);
    await spec
      .given([raised(1n, ChangeType.NORMAL), submitted, awaiting])
      .when(
        published(ChangeRequestFailedSchema, {
          metadata: metadata(4n),
          ...about,
          state: ChangeState.FAILED,
          reason: "rolled back",
        }),
      )
      .then(columns, [{ state: "FAILED", awaiting_tasks_deployment_id: "", awaiting_tasks_environment: "" }]);
  });

  test("a change naming several environments lists those implemented so far; a replay adds none", async () => {
    const inStaging = published(ChangeRequestEnvironmentImplementedSchema, {
      metadata: metadata(3n),
      changeRequestId,
      deploymentId: "d-1",
      environment: "staging",
      state: ChangeState.IMPLEMENTING,
      remainingEnvironments: ["production", "dr"],
    });
    const inDr = published(ChangeRequestEnvironmentImplementedSchema, {
      metadata: metadata(4n),
      changeRequestId,
      deploymentId: "d-2",
      environment: "dr",
      state: ChangeState.IMPLEMENTING,
      remainingEnvironments: ["production"],
    });
    const columns = "SELECT state, implemented_environments FROM change_view";
    const expected = [{ state: "IMPLEMENTING", implemented_environments: ["staging", "dr"] }];
    await spec
      .given([raised(1n, ChangeType.NORMAL), submitted, inStaging])
      .when(inDr)
      .then(columns, expected);
    await spec
      .given([raised(1n, ChangeType.NORMAL), submitted, inStaging, inDr])
      .when(inStaging)
      .then(columns, expected);
  });
});

describe("configuration", () => {
  const spec = gatewayProjectionSpec(configurationProjection);
  const registered = (ciId: string) =>
    published(ConfigurationItemRegisteredSchema, {
      metadata: metadata(1n),
      ciId,
      name: ciId,
      type: CiType.SERVICE,
      owner: "olga",
      status: CiLifecycleStatus.LIVE,
      attributes: { tier: "1" },
    });
  const renamed = (name: string) =>
    published(ConfigurationItemUpdatedSchema, { metadata: metadata(2n), ciId: "payments-api", name });
  const ci = "SELECT ci_id, name, type, status, attributes, version FROM cmdb_ci_view ORDER BY ci_id";

  test("a CI is registered, updated, and a replayed update changes nothing", async () => {
    await spec
      .given([registered("payments-api"), renamed("Payments API")])
      .when(renamed("replayed"))
      .then(ci, [
        {
          ci_id: "payments-api",
          name: "Payments API",
          type: "SERVICE",
          status: "LIVE",
          attributes: { tier: "1" },
          version: "2",
        },
      ]);
  });

  test("a relationship is kept under its source CI", async () => {
    await spec
      .given([registered("payments-api"), registered("payments-db")])
      .when(
        published(RelationshipAddedSchema, {
          metadata: metadata(2n),
          relationship: { sourceCiId: "payments-api", type: RelationshipType.DEPENDS_ON, targetCiId: "payments-db" },
        }),
      )
      .then("SELECT source_ci_id, type, target_ci_id FROM cmdb_relationship_view", [
        { source_ci_id: "payments-api", type: "DEPENDS_ON", target_ci_id: "payments-db" },
      ]);
  });
});

describe("deployments", () => {
  const spec = gatewayProjectionSpec(deploymentProjection);
  const artifacts = [{ artifactId: "art-1", name: "payments-api", version: "4.2.0", targetCiIds: ["host-1"] }];
  const started = published(DeploymentStartedSchema, {
    metadata: metadata(1n),
    deploymentId: "dep-1",
    releaseId: "rel-1",
    environment: "production",
    artifacts,
    strategy: "ROLLING",
    environmentSequence: 1n,
  });
  const succeeded = published(DeploymentSucceededSchema, {
    metadata: metadata(2n),
    deploymentId: "dep-1",
    releaseId: "rel-1",
    environment: "production",
    artifacts,
    environmentSequence: 2n,
  });
  const row = "SELECT deployment_id, state, state_sequence, strategy, artifacts FROM deployment_view";
  const deployed = [{ artifactId: "art-1", name: "payments-api", version: "4.2.0", targetCiIds: ["host-1"] }];

  test("an outcome that arrives before its start keeps its state: the newer sequence wins", async () => {
    await spec
      .given([succeeded])
      .when(started)
      .then(row, [
        { deployment_id: "dep-1", state: "SUCCEEDED", state_sequence: "2", strategy: "ROLLING", artifacts: deployed },
      ]);
  });

  test("a success puts its artifacts into the environment's inventory", async () => {
    await spec
      .given([started])
      .when(succeeded)
      .then(
        `SELECT target_ci_id, artifact_name, artifact_version, deployment_id
         FROM environment_inventory_view WHERE environment = 'production'`,
        [{ target_ci_id: "host-1", artifact_name: "payments-api", artifact_version: "4.2.0", deployment_id: "dep-1" }],
      );
  });

  test("an event naming no environment is refused (dead-lettered by the consumer)", async () => {
    await spec
      .given([])
      .when(published(DeploymentStartedSchema, { metadata: metadata(1n), deploymentId: "dep-2" }))
      .thenThrows("names no deployment or no environment");
  });
});
