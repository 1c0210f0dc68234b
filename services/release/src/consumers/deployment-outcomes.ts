import type { Migration } from "@rdm/eventstore";
import { type CloudEvent, decodeEvent } from "@rdm/messaging";
import { instantOf } from "@rdm/proto";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
  DeploymentSucceededSchema,
  EnvironmentChangedSchema,
  EnvironmentRegisteredSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { DeploymentOutcome } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type pg from "pg";
import type { DeploymentOutcomeReport } from "../domain/release.js";
import { isProductionSql } from "../store/deployment-environments.js";
import { lockReleaseReactions, releaseCommand } from "../store/releases.js";
import { loadChangeStates } from "./change-requests.js";
import { type ReleaseReactionDeps, reactOnRelease } from "./release-reaction.js";

/** The promotion order as the deployment topic tells it: which environment is production. */
export const deploymentEnvironmentMigrations: Migration[] = [
  {
    version: 7,
    name: "deployment environments (promotion order)",
    sql: `CREATE TABLE deployment_environments (
        name          text PRIMARY KEY,
        promotes_from text NOT NULL DEFAULT ''
      );`,
  },
  {
    version: 10,
    name: "deployment environments: production as defined",
    // NULL: not said; production is then the end of the promotion order.
    sql: "ALTER TABLE deployment_environments ADD COLUMN production boolean",
  },
];

interface Outcome {
  metadata?: EventMetadata | undefined;
  deploymentId: string;
  releaseId: string;
  environment: string;
  reason?: string;
  /** What was deployed (a success) or restored (a rollback). */
  artifacts?: { artifactId: string }[];
  /** Production as the deployment service knew it at the outcome (unset in older events). */
  production?: boolean | undefined;
  /** A success: every environment the deployment service took as production then (empty in older events). */
  productionEnvironments?: string[];
}

function outcomeOf(event: CloudEvent): { outcome: Outcome; kind: DeploymentOutcome } | undefined {
  switch (event.type) {
    case DeploymentSucceededSchema.typeName:
      return {
        outcome: decodeEvent(DeploymentSucceededSchema, event),
        kind: DeploymentOutcome.SUCCEEDED,
      };
    case DeploymentFailedSchema.typeName:
      return {
        outcome: decodeEvent(DeploymentFailedSchema, event),
        kind: DeploymentOutcome.FAILED,
      };
    case DeploymentRolledBackSchema.typeName:
      return {
        outcome: decodeEvent(DeploymentRolledBackSchema, event),
        kind: DeploymentOutcome.ROLLED_BACK,
      };
    default:
      return undefined;
  }
}

async function isProduction(tx: pg.PoolClient, environment: string): Promise<boolean> {
  const { rows } = await tx.query<{ production: boolean }>(
    `SELECT ${isProductionSql("e")} AS production FROM deployment_environments e WHERE e.name = $1`,
    [environment],
  );
  return rows[0]?.production ?? false;
}

/**
 * The release's reactions to its deployments (design §4, issue "One system"): each outcome on
 * rdm.deployment.events.v1 becomes a RecordDeploymentOutcome command on the release's own
 * decider, in the consumer's transaction, caused by the upstream event and in its trace. The
 * decider records each outcome of a deployment once, so a redelivered or replayed message
 * appends nothing. A refusal (e.g. a release this service does not know) is logged and skipped.
 * An outcome says whether its environment is production; for older outcomes, which do not,
 * environment events keep the promotion order that says it.
 */
export async function reactToDeploymentEvent(
  event: CloudEvent,
  tx: pg.PoolClient,
  deps: ReleaseReactionDeps,
): Promise<void> {
  if (event.type === EnvironmentRegisteredSchema.typeName || event.type === EnvironmentChangedSchema.typeName) {
    const schema =
      event.type === EnvironmentRegisteredSchema.typeName ? EnvironmentRegisteredSchema : EnvironmentChangedSchema;
    const { environment } = decodeEvent(schema, event);
    if (!environment?.name) return;
    await tx.query(
      `INSERT INTO deployment_environments (name, promotes_from, production) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET promotes_from = EXCLUDED.promotes_from, production = EXCLUDED.production`,
      [environment.name, environment.promotesFrom, environment.production ?? null],
    );
    return;
  }
  const found = outcomeOf(event);
  if (!found?.outcome.releaseId) return;
  const { outcome, kind } = found;
  const occurredAt = outcome.metadata?.occurredAt;
  const report: DeploymentOutcomeReport = {
    deploymentId: outcome.deploymentId,
    environment: outcome.environment,
    outcome: kind,
    // The deployment service's word, else the promotion order as this service has read it so far.
    production: outcome.production ?? (await isProduction(tx, outcome.environment)),
    reason: outcome.reason ?? "",
    occurredAt: instantOf(occurredAt, event.time),
    ...(kind === DeploymentOutcome.SUCCEEDED
      ? {
          artifactIds: (outcome.artifacts ?? []).map((a) => a.artifactId),
          productionEnvironments: outcome.productionEnvironments ?? [],
        }
      : {}),
  };
  await lockReleaseReactions(tx, outcome.releaseId.toLowerCase());
  await reactOnRelease(
    deps,
    tx,
    { event, metadata: outcome.metadata },
    releaseCommand(
      outcome.releaseId,
      async (state) => ({
        kind: "recordDeploymentOutcome",
        // The linked changes matter only to a production success, which may move the release on.
        deployment:
          kind === DeploymentOutcome.SUCCEEDED && report.production
            ? { ...report, changes: await loadChangeStates(tx, state.release, report.productionEnvironments) }
            : report,
      }),
      { sizeLimited: false },
    ),
    { reaction: "release", about: { releaseId: outcome.releaseId, deploymentId: outcome.deploymentId } },
  );
}
