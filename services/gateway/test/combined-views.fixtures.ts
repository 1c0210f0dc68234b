// One release's story on the four topics, as the services publish it: a release with a linked
// change and a verified artifact, approved, a deadline missed; a canary deployment that succeeds
// inside a freeze, a second that fails and is rolled back, a third planned and cancelled, and a
// fourth waiting for its approval. Each event is placed on a
// partition the test chooses, so the order across partitions is the test's.
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { STANDARD_MODEL } from "@rdm/domain-kernel/release";
import type { CloudEvent } from "@rdm/messaging";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestRaisedSchema, FreezeWindowDeclaredSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { CiLifecycleStatus } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ArtifactQuarantinedSchema,
  ArtifactRegisteredSchema,
  ArtifactVerifiedSchema,
  ConfigurationItemStatusChangedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import {
  DeploymentCancelledSchema,
  DeploymentFailedSchema,
  DeploymentPlannedSchema,
  DeploymentRollbackStartedSchema,
  DeploymentRolledBackSchema,
  DeploymentScheduledSchema,
  DeploymentStartedSchema,
  DeploymentStepClaimedSchema,
  DeploymentStepCompletedSchema,
  DeploymentStrategyKind,
  DeploymentSucceededSchema,
  DeploymentTargetProgressedSchema,
  EnvironmentRegisteredSchema,
  StepKind,
  StepState,
  TargetOutcome,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  ReleaseApprovalGrantedSchema,
  ReleaseApprovalRequestedSchema,
  ReleaseArtifactAttachedSchema,
  ReleaseChangeRequestLinkedSchema,
  ReleaseDeadlineMissedSchema,
  ReleaseLogEntryRecordedSchema,
  ReleaseRegisteredSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { LogEntryKind, ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { uniqueId } from "@rdm/testkit";

export const at = (iso: string) => new Date(`2026-12-${iso}Z`);
const ts = (iso: string) => timestampFromDate(at(iso));
const window = (start: string, end: string) => ({ start: ts(start), end: ts(end) });

/** A CloudEvent of `schema` about `subject`, version `version` of its stream, at `when`. */
function event<D extends DescMessage>(
  schema: D,
  subject: string,
  version: number,
  when: string,
  fields: Omit<MessageInitShape<D>, "metadata">,
  { actor = "rita", correlationId = "" } = {},
): CloudEvent {
  const id = randomUUID();
  const metadata = create(EventMetadataSchema, {
    eventId: id,
    actor,
    streamId: subject,
    streamVersion: BigInt(version),
    occurredAt: ts(when),
    correlationId,
    causationId: randomUUID(),
  });
  const message = create(schema, { ...fields, metadata } as unknown as MessageInitShape<D>);
  return { id, type: schema.typeName, source: "test", subject, time: new Date(), data: toBinary(schema, message) };
}

const newIds = () => ({
  release: randomUUID(),
  key: uniqueId("REL"),
  change: randomUUID(),
  freeze: randomUUID(),
  artifact: uniqueId("art"),
  worker: uniqueId("art"),
  service: uniqueId("svc"),
  environment: uniqueId("prod"),
  canary: randomUUID(),
  failing: randomUUID(),
  withdrawn: randomUUID(),
  awaiting: randomUUID(),
  h1: uniqueId("host"),
  h2: uniqueId("host"),
});
type Ids = ReturnType<typeof newIds>;
const api = (ids: Ids, version: string, targetCiIds: string[]) => [
  { artifactId: ids.artifact, name: "api", version, targetCiIds },
];
const step = (index: number, kind: StepKind, label: string, targetCiIds: string[]) => ({
  index,
  kind,
  label,
  targetCiIds,
  state: StepState.PENDING,
});

function releaseEvents(ids: Ids): CloudEvent[] {
  const releaseId = ids.release;
  return [
    event(ReleaseRegisteredSchema, releaseId, 1, "01T08:00:00", {
      releaseId,
      key: ids.key,
      title: "Payments 2.0",
      type: ReleaseType.MINOR,
      owner: "olga",
      phase: ReleasePhase.PLANNING,
      model: STANDARD_MODEL,
      plannedWindow: window("01T08:00:00", "03T18:00:00"),
    }),
    event(ReleaseChangeRequestLinkedSchema, releaseId, 2, "01T08:05:00", { releaseId, changeRequestId: ids.change }),
    event(ReleaseArtifactAttachedSchema, releaseId, 3, "01T08:10:00", {
      releaseId,
      // The checksum as the DML has it, written in capitals (hex is hex).
      artifact: {
        artifactId: ids.artifact,
        name: "api",
        version: "2.0.0",
        sha256: "A".repeat(64),
        configurationItemId: ids.service,
      },
    }),
    event(ReleaseApprovalRequestedSchema, releaseId, 4, "01T09:00:00", {
      releaseId,
      approvalId: "ap-1",
      phase: ReleasePhase.PLANNING,
      approverGroup: "cab",
      quorum: 1,
    }),
    event(
      ReleaseApprovalGrantedSchema,
      releaseId,
      5,
      "01T09:30:00",
      { releaseId, approvalId: "ap-1", approver: "ann", quorumReached: true },
      { actor: "ann" },
    ),
    event(ReleaseDeadlineMissedSchema, releaseId, 6, "01T12:00:05", {
      releaseId,
      phase: ReleasePhase.PLANNING,
      dueAt: ts("01T12:00:00"),
    }),
    // A second artifact, under a version the DML did not register it with.
    event(ReleaseArtifactAttachedSchema, releaseId, 7, "01T13:00:00", {
      releaseId,
      artifact: { artifactId: ids.worker, name: "worker", version: "1.0.0", sha256: "b".repeat(64) },
    }),
  ];
}

function changeEvents(ids: Ids): CloudEvent[] {
  const { release: releaseId, environment } = ids;
  return [
    event(ChangeRequestRaisedSchema, ids.change, 1, "01T07:00:00", {
      changeRequestId: ids.change,
      linkedReleaseId: releaseId,
      state: ChangeState.SCHEDULED,
      key: uniqueId("CHG"),
      title: "switch payments to 2.0",
      affectedCiIds: [ids.service],
      environments: [environment],
      plannedWindow: window("02T08:00:00", "02T12:00:00"),
    }),
    event(FreezeWindowDeclaredSchema, ids.freeze, 1, "01T07:30:00", {
      freezeWindowId: ids.freeze,
      name: "payments freeze",
      window: window("02T09:00:00", "02T10:00:00"),
      scope: { environments: [environment] },
    }),
  ];
}

function configurationEvents(ids: Ids): CloudEvent[] {
  return [
    event(ArtifactRegisteredSchema, ids.artifact, 1, "01T06:00:00", {
      artifactId: ids.artifact,
      name: "api",
      version: "2.0.0",
      sha256: "a".repeat(64),
    }),
    event(ArtifactVerifiedSchema, ids.artifact, 2, "01T06:05:00", { artifactId: ids.artifact, sha256: "a".repeat(64) }),
    event(ArtifactRegisteredSchema, ids.worker, 1, "01T06:10:00", {
      artifactId: ids.worker,
      name: "worker",
      version: "1.0.1",
      sha256: "b".repeat(64),
    }),
  ];
}

function canaryEvents(ids: Ids): CloudEvent[] {
  const { release: releaseId, environment } = ids;
  const d1 = { deploymentId: ids.canary, releaseId, environment };
  const canaryOptions = { actor: "executor-1", correlationId: `corr-${ids.canary}` };
  return [
    event(
      DeploymentPlannedSchema,
      ids.canary,
      1,
      "02T07:00:00",
      {
        ...d1,
        artifacts: api(ids, "2.0.0", [ids.h1, ids.h2]),
        strategy: { kind: DeploymentStrategyKind.CANARY },
        window: window("02T08:00:00", "02T11:00:00"),
        linkedChangeIds: [ids.change],
        steps: [
          step(0, StepKind.DEPLOY, "canary 50%", [ids.h1]),
          step(1, StepKind.DEPLOY, "100%", [ids.h2]),
          step(2, StepKind.VERIFY, "verify", [ids.h1, ids.h2]),
        ],
      },
      canaryOptions,
    ),
    event(DeploymentScheduledSchema, ids.canary, 2, "02T07:30:00", { deploymentId: ids.canary }, canaryOptions),
    event(
      DeploymentStepClaimedSchema,
      ids.canary,
      3,
      "02T08:00:00",
      { deploymentId: ids.canary, stepIndex: 0, executorId: "executor-1" },
      canaryOptions,
    ),
    event(
      DeploymentStartedSchema,
      ids.canary,
      4,
      "02T08:00:01",
      { ...d1, artifacts: api(ids, "2.0.0", [ids.h1, ids.h2]), strategy: "CANARY", environmentSequence: 1n },
      canaryOptions,
    ),
    event(
      DeploymentTargetProgressedSchema,
      ids.canary,
      5,
      "02T08:20:00",
      { deploymentId: ids.canary, stepIndex: 0, ciId: ids.h1, outcome: TargetOutcome.SUCCEEDED },
      canaryOptions,
    ),
    event(
      DeploymentStepCompletedSchema,
      ids.canary,
      6,
      "02T08:30:00",
      { deploymentId: ids.canary, stepIndex: 0 },
      canaryOptions,
    ),
    event(
      DeploymentSucceededSchema,
      ids.canary,
      7,
      "02T10:00:00",
      { ...d1, artifacts: api(ids, "2.0.0", [ids.h1, ids.h2]), environmentSequence: 2n },
      canaryOptions,
    ),
  ];
}

function failingEvents(ids: Ids): CloudEvent[] {
  const { release: releaseId, environment } = ids;
  const d2 = { deploymentId: ids.failing, releaseId, environment };
  return [
    event(DeploymentPlannedSchema, ids.failing, 1, "03T07:00:00", {
      ...d2,
      artifacts: api(ids, "3.0.0", [ids.h1]),
      strategy: { kind: DeploymentStrategyKind.ALL_AT_ONCE },
      steps: [step(0, StepKind.DEPLOY, "all", [ids.h1])],
    }),
    event(DeploymentStartedSchema, ids.failing, 2, "03T08:00:00", {
      ...d2,
      artifacts: api(ids, "3.0.0", [ids.h1]),
      strategy: "ALL_AT_ONCE",
      environmentSequence: 3n,
    }),
    event(DeploymentFailedSchema, ids.failing, 3, "03T09:00:00", {
      ...d2,
      artifacts: api(ids, "3.0.0", [ids.h1]),
      reason: "health check failed",
      failedTargetCiIds: [ids.h1],
      environmentSequence: 4n,
    }),
    event(DeploymentRollbackStartedSchema, ids.failing, 4, "03T09:01:00", {
      deploymentId: ids.failing,
      reason: "automatic back-out",
      automatic: true,
      artifacts: api(ids, "2.0.0", [ids.h1, ids.h2]),
    }),
    event(DeploymentRolledBackSchema, ids.failing, 5, "03T09:20:00", {
      ...d2,
      artifacts: api(ids, "2.0.0", [ids.h1, ids.h2]),
      reason: "automatic back-out",
      environmentSequence: 5n,
    }),
  ];
}

/** Deployments planned after the rollback that have not begun (one cancelled): they changed nothing. */
function withdrawnEvents(ids: Ids): CloudEvent[] {
  const { release: releaseId, environment } = ids;
  return [
    event(DeploymentPlannedSchema, ids.withdrawn, 1, "03T10:00:00", {
      deploymentId: ids.withdrawn,
      releaseId,
      environment,
      artifacts: api(ids, "3.0.1", [ids.h1]),
      strategy: { kind: DeploymentStrategyKind.ALL_AT_ONCE },
      steps: [step(0, StepKind.DEPLOY, "all", [ids.h1])],
    }),
    event(DeploymentCancelledSchema, ids.withdrawn, 2, "03T10:05:00", {
      deploymentId: ids.withdrawn,
      reason: "superseded",
      releaseId,
      environment,
    }),
    // Planned after it, and waiting for an approval: it has not begun either.
    event(DeploymentPlannedSchema, ids.awaiting, 1, "03T11:00:00", {
      deploymentId: ids.awaiting,
      releaseId,
      environment,
      artifacts: api(ids, "3.0.2", [ids.h1]),
      strategy: { kind: DeploymentStrategyKind.ALL_AT_ONCE },
      steps: [step(0, StepKind.DEPLOY, "all", [ids.h1])],
      requiredApprovals: 1,
      approvalGroup: "cab",
    }),
  ];
}

/**
 * Configuration facts a dashboard of the release and one of a staging environment see arrive: the
 * package's artifact quarantined, and staging's target (registered with it) going into maintenance.
 */
export function laterConfigurationFacts(ids: Ids) {
  const staging = `${ids.environment}-staging`;
  const target = `${ids.h1}-staging`;
  return {
    staging,
    registered: event(EnvironmentRegisteredSchema, `environment-${staging}`, 1, "03T11:00:00", {
      environment: { name: staging, promotionRank: 1, targetGroups: [{ name: "rest", ciIds: [target] }] },
    }),
    quarantined: event(ArtifactQuarantinedSchema, ids.artifact, 3, "03T12:00:00", {
      artifactId: ids.artifact,
      reason: "CVE",
    }),
    maintenance: event(ConfigurationItemStatusChangedSchema, target, 2, "03T12:05:00", {
      ciId: target,
      from: CiLifecycleStatus.LIVE,
      to: CiLifecycleStatus.MAINTENANCE,
    }),
  };
}

/** A deviation the release records later (its 8th event): what a live dashboard sees arrive. */
export const deviationRecorded = (ids: Ids) =>
  event(ReleaseLogEntryRecordedSchema, ids.release, 8, "03T09:30:00", {
    releaseId: ids.release,
    entry: { entryId: "dev-1", kind: LogEntryKind.DEVIATION, text: "production rollback", recordedBy: "olga" },
  });

export function story() {
  const ids = newIds();
  return {
    ids,
    release: releaseEvents(ids),
    change: changeEvents(ids),
    configuration: configurationEvents(ids),
    canary: canaryEvents(ids),
    failing: failingEvents(ids),
    withdrawn: withdrawnEvents(ids),
  };
}
