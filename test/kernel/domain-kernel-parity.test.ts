// The domain kernel folds as the services do, until the services import it (then this spec
// compares a function with itself and goes): the same release states and gate conditions, the
// same baselines, the same impact walks.
import { randomUUID } from "node:crypto";
import { create, equals, toJson } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as configurationService from "@rdm/configuration/baseline";
import * as impactService from "@rdm/configuration/impact";
import * as kernelConfiguration from "@rdm/domain-kernel/configuration";
import * as kernelRelease from "@rdm/domain-kernel/release";
import { RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { BaselineDeploymentRecordedSchema, DeploymentOutcome } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import {
  ReleasePhase,
  ReleaseSchema,
  ReleaseStatus,
  ReleaseType,
  TaskStatus,
} from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import * as releaseService from "@rdm/release/domain";

const metadata = (streamVersion: bigint, actor = "olga") => ({
  streamVersion,
  actor,
  occurredAt: timestampFromDate(new Date(Date.UTC(2026, 11, 1, 9, Number(streamVersion)))),
});

function releaseHistory(releaseId: string): kernelRelease.ReleaseEvent[] {
  const task = { taskId: "t1", phase: ReleasePhase.PLANNING, phaseEntry: 1, name: "plan", required: true };
  return [
    create(ev.ReleaseRegisteredSchema, {
      metadata: metadata(1n),
      releaseId,
      key: "REL-2026-0001",
      title: "Payments",
      type: ReleaseType.MAJOR,
      owner: "olga",
      phase: ReleasePhase.PLANNING,
      model: kernelRelease.STANDARD_MODEL,
    }),
    create(ev.ReleasePlanningUpdatedSchema, {
      metadata: metadata(2n),
      releaseId,
      title: "Payments",
      coordinator: "cora",
    }),
    create(ev.ReleaseTaskAddedSchema, {
      metadata: metadata(3n),
      releaseId,
      task: { ...task, status: TaskStatus.OPEN },
    }),
    create(ev.ReleaseApprovalRequestedSchema, {
      metadata: metadata(4n),
      releaseId,
      approvalId: "a1",
      phase: ReleasePhase.PLANNING,
      phaseEntry: 1,
      approverGroup: "cab",
      quorum: 1,
    }),
    create(ev.ReleaseApprovalGrantedSchema, {
      metadata: metadata(5n, "ann"),
      releaseId,
      approvalId: "a1",
      approver: "ann",
    }),
    create(ev.ReleaseTaskCompletedSchema, { metadata: metadata(6n), releaseId, taskId: "t1" }),
    create(ev.ReleaseChangeRequestLinkedSchema, { metadata: metadata(7n), releaseId, changeRequestId: "c1" }),
    create(ev.ReleasePhaseAdvancedSchema, {
      metadata: metadata(8n),
      releaseId,
      fromPhase: ReleasePhase.PLANNING,
      toPhase: ReleasePhase.BUILD_AND_TEST,
      phaseEntry: 1,
    }),
    create(ev.ReleaseArtifactAttachedSchema, {
      metadata: metadata(9n),
      releaseId,
      artifact: { artifactId: "art-1", name: "payments-api", version: "4.2.0" },
    }),
    create(ev.ReleasePackageFrozenSchema, { metadata: metadata(10n), releaseId }),
    create(ev.ReleasePhaseReworkedSchema, {
      metadata: metadata(11n),
      releaseId,
      toPhase: ReleasePhase.PLANNING,
      phaseEntry: 2,
      reason: "scope",
    }),
    create(ev.ReleaseAbandonedSchema, { metadata: metadata(12n), releaseId, reason: "cancelled" }),
  ];
}

test("the kernel's release fold and gate conditions equal the release service's, event by event", () => {
  const events = releaseHistory(randomUUID());
  for (let n = 1; n <= events.length; n++) {
    const kernel = kernelRelease.fold(events.slice(0, n));
    const service = releaseService.fold(events.slice(0, n) as releaseService.ReleaseEvent[]);
    expect(kernel.release && toJson(ReleaseSchema, kernel.release)).toEqual(
      service.release && toJson(ReleaseSchema, service.release),
    );
    const linked = [{ changeRequestId: "c1", state: "AUTHORIZED" }];
    expect(kernelRelease.gateConditions(kernel, linked)).toEqual(releaseService.gateConditions(service, linked));
  }
  const final = kernelRelease.fold(events);
  expect(final.release?.status).toBe(ReleaseStatus.ABANDONED);
  expect(final.release?.packageFrozen).toBe(false); // the rework reopened the package
});

test("the kernel's baseline fold equals the configuration service's, whatever the recording order", () => {
  const outcome = (deploymentId: string, sequence: bigint, kind: DeploymentOutcome, version: string) =>
    create(BaselineDeploymentRecordedSchema, {
      metadata: metadata(sequence),
      environment: "production",
      deploymentId,
      outcome: kind,
      environmentSequence: sequence,
      sourceEventId: randomUUID(),
      entries: [{ ciId: "host-1", artifactName: "payments-api", artifactVersion: version, deploymentId }],
    });
  const history = [
    outcome("d2", 2n, DeploymentOutcome.FAILED, "4.2.0"),
    outcome("d1", 1n, DeploymentOutcome.SUCCEEDED, "4.1.0"),
    outcome("d3", 3n, DeploymentOutcome.ROLLED_BACK, "4.1.0"),
  ];
  const kernel = kernelConfiguration.foldBaseline(history).baseline;
  const service = configurationService.foldBaseline(history).baseline;
  expect(kernel).toBeDefined();
  expect(kernel).toEqual(service);
});

test("the kernel's impact walk equals the configuration service's", async () => {
  const edges = [
    { sourceCiId: "api", type: RelationshipType.DEPENDS_ON, targetCiId: "db" },
    { sourceCiId: "web", type: RelationshipType.DEPENDS_ON, targetCiId: "api" },
    { sourceCiId: "db", type: RelationshipType.PART_OF, targetCiId: "payments" },
    { sourceCiId: "api", type: RelationshipType.RUNS_ON, targetCiId: "host" },
  ];
  const impactEdges = async (causeIds: string[]) =>
    edges.filter((e) => causeIds.includes(kernelConfiguration.impactDirection(e).cause));
  for (const root of ["db", "host", "api"]) {
    const kernel = await kernelConfiguration.transitiveDependents(root, impactEdges, { maxDepth: 0 });
    const service = await impactService.transitiveDependents(root, impactEdges, { maxDepth: 0 });
    expect(kernel).toEqual(service);
  }
  expect((await kernelConfiguration.transitiveDependents("db", impactEdges, { maxDepth: 0 })).length).toBeGreaterThan(
    1,
  );
});

test("equal states are equal protobuf messages too", () => {
  const events = releaseHistory(randomUUID());
  const kernel = kernelRelease.fold(events).release;
  const service = releaseService.fold(events as releaseService.ReleaseEvent[]).release;
  expect(kernel && service && equals(ReleaseSchema, kernel, service)).toBe(true);
});
