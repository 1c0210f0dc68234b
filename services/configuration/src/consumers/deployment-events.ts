import { create, createRegistry } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { type CommandHandler, reactionOrigin } from "@rdm/command-handler";
import { type CloudEvent, decodeEvent, PermanentError } from "@rdm/messaging";
import { BaselineArtifactSchema, BaselineEntrySchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { DeploymentOutcome } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import {
  type DeployedArtifact,
  type DeploymentFailed,
  DeploymentFailedSchema,
  type DeploymentRolledBack,
  DeploymentRolledBackSchema,
  DeploymentStartedSchema,
  type DeploymentSucceeded,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import type pg from "pg";
import * as baselineAggregate from "../domain/baseline.js";
import { type BaselineEvent, baselineStreamId } from "../domain/baseline.js";
import type { ConfigurationEvent } from "../store/event-codec.js";
import { saveBaselineRow } from "../store/query-tables.js";
import { artifactIdByNameVersion } from "../store/read-model.js";
import { historyOf } from "../store/streams.js";

const deploymentEvents = createRegistry(
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
);

const OUTCOMES: Record<string, DeploymentOutcome> = {
  [DeploymentSucceededSchema.typeName]: DeploymentOutcome.SUCCEEDED,
  [DeploymentFailedSchema.typeName]: DeploymentOutcome.FAILED,
  [DeploymentRolledBackSchema.typeName]: DeploymentOutcome.ROLLED_BACK,
};

/**
 * Above this many artifact-target pairs an outcome lists its artifacts, each with its CIs,
 * instead of an entry per pair (about three times the bytes): the record of a deployment then
 * stays about the size of the deployment's own event, which the same event size limit bounds.
 */
const MAX_BASELINE_ENTRIES = 1000;

/** What the deployment put where, as the baseline records it (entries or artifacts, by size). */
async function recordOf(tx: pg.PoolClient, deployed: DeployedArtifact[]) {
  const artifacts = [];
  for (const artifact of deployed) {
    // Deployment events may name the artifact only; the DML knows its id.
    const artifactId =
      artifact.artifactId || (await artifactIdByNameVersion(tx, artifact.name, artifact.version)) || "";
    artifacts.push(
      create(BaselineArtifactSchema, {
        artifactId,
        artifactName: artifact.name,
        artifactVersion: artifact.version,
        ciIds: artifact.targetCiIds,
      }),
    );
  }
  const pairs = artifacts.reduce((sum, a) => sum + a.ciIds.length, 0);
  if (pairs > MAX_BASELINE_ENTRIES) return { entries: [], artifacts };
  const entries = artifacts.flatMap(({ ciIds, artifactId, artifactName, artifactVersion }) =>
    ciIds.map((ciId) => create(BaselineEntrySchema, { ciId, artifactId, artifactName, artifactVersion })),
  );
  return { entries, artifacts: [] };
}

/**
 * Keeps each environment's baseline from rdm.deployment.events.v1: a succeeded deployment moves
 * the baseline and its last known good, a failed one marks it degraded, a rollback replaces its
 * artifact names' entries with those it restored (the whole baseline, when it names none).
 * Outcomes take effect in the environment's order (environment_sequence), not in the order they
 * arrive (see the baseline's fold). Event types this
 * service does not know are skipped, not dead-lettered: the topic gains types as the
 * deployment service grows. Runs inside the consumer's exactly-once transaction.
 */
export function baselineProjector(handler: CommandHandler<ConfigurationEvent>) {
  return async (event: CloudEvent, tx: pg.PoolClient): Promise<void> => {
    const outcome = OUTCOMES[event.type];
    if (outcome === undefined) return; // DeploymentStarted and future event types: nothing to record.
    const schema = deploymentEvents.getMessage(event.type);
    if (!schema) return;
    const deployment = decodeEvent(schema, event) as DeploymentSucceeded | DeploymentFailed | DeploymentRolledBack;
    if (!deployment.environment) throw new PermanentError(`${event.type} ${event.id} names no environment`);

    await handler.handleIn(
      tx,
      {
        ...reactionOrigin(event, deployment.metadata),
        actor: deployment.metadata?.actor || "rdm-configuration",
        // When the deployment happened, not when it is processed (a rebuild or a lagging consumer
        // would stamp everything "now"): the event's occurred_at, else the CloudEvent's time.
        occurredAt: deployment.metadata?.occurredAt ?? timestampFromDate(event.time),
      },
      {
        aggregate: historyOf<BaselineEvent>(),
        streamId: baselineStreamId(deployment.environment),
        decide: async (history) =>
          baselineAggregate.decide(
            {
              kind: "recordDeployment",
              environment: deployment.environment,
              deploymentId: deployment.deploymentId,
              releaseId: deployment.releaseId,
              outcome,
              ...(await recordOf(tx, deployment.artifacts)),
              reason: "reason" in deployment ? deployment.reason : "",
              ...("restoredArtifactNames" in deployment
                ? {
                    restoredArtifactNames: deployment.restoredArtifactNames,
                    restoredTargetCiIds: deployment.restoredTargetCiIds,
                  }
                : { restoredArtifactNames: [], restoredTargetCiIds: [] }),
              sourceEventId: event.id,
              environmentSequence: deployment.environmentSequence,
            },
            baselineAggregate.fold(history),
          ),
        project: async (client, { after }) => {
          await saveBaselineRow(client, after);
        },
      },
    );
  };
}
