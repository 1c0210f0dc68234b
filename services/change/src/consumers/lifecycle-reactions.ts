import { type CommandHandler, type CommandOrigin, isRuleViolation, reactionOrigin } from "@rdm/command-handler";
import { implementedIn } from "@rdm/domain-kernel/change";
import { type CloudEvent, decodeEvent } from "@rdm/messaging";
import type { Logger } from "@rdm/observability";
import type { ChangeRequest } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  DeploymentFailedSchema,
  DeploymentRolledBackSchema,
  DeploymentStartedSchema,
  DeploymentSucceededSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  ReleaseChangeRequestLinkedSchema,
  ReleaseChangeRequestUnlinkedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type pg from "pg";
import { type ChangeRequestCommand, decide } from "../domain/change-request.js";
import { changeRequests } from "../store/aggregates.js";
import type { ServiceEvent } from "../store/event-codec.js";
import { changeProjection, changesImplementedBy } from "../store/read-model.js";

export interface ReactionDeps {
  handler: CommandHandler<ServiceEvent>;
  logger: Logger;
}

/**
 * Applies a command to one change within the consumer's transaction. A refusal means the
 * change has moved on (e.g. it was already failed by hand): logged and skipped, not retried.
 */
async function react(
  tx: pg.PoolClient,
  deps: ReactionDeps,
  changeRequestId: string,
  cause: CommandOrigin,
  command: ChangeRequestCommand,
): Promise<void> {
  try {
    await deps.handler.handleIn(tx, cause, {
      aggregate: changeRequests,
      streamId: changeRequestId,
      decide: (state) => decide(command, state),
      projection: changeProjection,
    });
  } catch (error) {
    if (!isRuleViolation(error)) throw error;
    deps.logger.info(
      { changeRequestId, rule: error.rule, causationId: cause.causationId },
      `change reaction skipped: ${error.message}`,
    );
  }
}

interface DeploymentOutcome {
  releaseId: string;
  environment: string;
  deploymentId: string;
  metadata?: EventMetadata | undefined;
  production?: boolean | undefined;
  /** The changes the deployment implements (as it began); empty in events from before it said. */
  changeRequestIds: string[];
  /** The list is the deployment's whole one, empty when it implements none (unset before). */
  changeRequestIdsRecorded?: boolean | undefined;
}

/** What a deployment event asks of each linked change: the event, and the commands per change. */
export interface DeploymentReaction {
  outcome: DeploymentOutcome;
  toCommands(change: ChangeRequest): ChangeRequestCommand[];
}

const stillOpen = (change: ChangeRequest) =>
  change.state === ChangeState.SCHEDULED || change.state === ChangeState.IMPLEMENTING;

/**
 * A rollback may back out what implemented an IMPLEMENTED change: the deployment whose success
 * implemented it (production's, or the last of its environments'). Whether this one did is the
 * decider's to tell, on the change's stream (read-model rows from before the upgrade do not say).
 * A change naming several environments implemented before this version, by the first of them
 * (no environments recorded on the way), is left by a back-out elsewhere than production, as then.
 */
const mayBackOut = (change: ChangeRequest, outcome: DeploymentOutcome) =>
  change.state === ChangeState.IMPLEMENTED &&
  (outcome.production === true || change.environments.length < 2 || change.implementedEnvironments.length > 0);

/**
 * A failed deployment fails the open change (its ChangeRequestFailed carries the back-out plan),
 * and the one it implemented (a rollback taken by hand after its success, then given up, records
 * its failure). A rolled-back one fails the change it was implementing, and the one it implemented
 * once IMPLEMENTED (backed out by hand after its success); another deployment's failure or rollback
 * of an IMPLEMENTED change is refused and skipped. A change still SCHEDULED a rollback never began
 * to implement (rolled back before its begin, its start reaction before this one on the
 * deployment's partition), so that rollback leaves it.
 */
const failing = (outcome: DeploymentOutcome, what: string, rollback = false): DeploymentReaction => ({
  outcome,
  toCommands: (change) =>
    (rollback ? change.state === ChangeState.IMPLEMENTING : stillOpen(change)) || mayBackOut(change, outcome)
      ? [
          {
            kind: "failImplementation",
            reason: `deployment ${outcome.deploymentId} of the linked release to ${outcome.environment} ${what}`,
            deploymentId: outcome.deploymentId,
            environment: outcome.environment,
          },
        ]
      : [],
});

/** The reaction a deployment event asks for; undefined for the events that move no change. */
export function reactionTo(event: CloudEvent): DeploymentReaction | undefined {
  switch (event.type) {
    case DeploymentStartedSchema.typeName: {
      const outcome = decodeEvent(DeploymentStartedSchema, event);
      const { deploymentId, environment } = outcome;
      return {
        outcome,
        toCommands: (change) =>
          change.state === ChangeState.SCHEDULED ? [{ kind: "startImplementation", deploymentId, environment }] : [],
      };
    }
    case DeploymentSucceededSchema.typeName: {
      const outcome = decodeEvent(DeploymentSucceededSchema, event);
      const { deploymentId, environment } = outcome;
      // A change still SCHEDULED missed the start (one that did not say production): both at once.
      // With tasks open, the change awaits them (ChangeRequestImplementationAwaitingTasks).
      return {
        outcome,
        toCommands: (change) => [
          ...(change.state === ChangeState.SCHEDULED
            ? [{ kind: "startImplementation", deploymentId, environment } as const]
            : []),
          ...(stillOpen(change)
            ? [
                {
                  kind: "completeImplementation",
                  deploymentId,
                  environment,
                  production: outcome.production ?? false,
                  productionEnvironments: outcome.productionEnvironments,
                  awaitOpenTasks: true,
                } as const,
              ]
            : []),
        ],
      };
    }
    case DeploymentFailedSchema.typeName: {
      const failed = decodeEvent(DeploymentFailedSchema, event);
      return failing(failed, `failed: ${failed.reason}`);
    }
    case DeploymentRolledBackSchema.typeName: {
      const rolledBack = decodeEvent(DeploymentRolledBackSchema, event);
      return failing(rolledBack, `was rolled back: ${rolledBack.reason}`, true);
    }
    default:
      return undefined;
  }
}

/**
 * Reactions to the deployments of a change's linked release (design §4): a deployment that
 * starts implements the scheduled change, one that succeeds completes it (a change naming several
 * environments once each has succeeded, or production has and no other production one it names
 * remains), one that fails or is rolled back
 * fails it. Only deployments to the change's environments count, to production when it names
 * none: production as the deployment event says (its `production` flag). The changes are those
 * the event names (its `change_request_ids`: those its start checked that its release still listed
 * as it began, whatever this service has heard of the release's links, so a change linked after the
 * start, unlinked before the begin, or one the deployment finished before, is not moved); events
 * from before it named them move the changes linked to the release.
 */
export async function reactToDeploymentEvent(event: CloudEvent, tx: pg.PoolClient, deps: ReactionDeps): Promise<void> {
  const reaction = reactionTo(event);
  if (!reaction?.outcome.releaseId) return;
  const { outcome } = reaction;
  const linked = await changesImplementedBy(tx, outcome.releaseId, outcome);
  if (linked.length === 0) return;
  const cause = reactionOrigin(event, outcome.metadata);
  // The deployment service says whether the environment is production; events from before it did
  // do not count for a change naming no environment (the success, which said it, implements it).
  const production = outcome.production ?? false;
  for (const { changeRequestId } of linked) {
    // Picked on the change as its stream is once locked: the query-table row was read before the
    // lock, and a command (a start by hand) may have moved the change since.
    const { state } = await deps.handler.load(
      tx,
      { aggregate: changeRequests, streamId: changeRequestId },
      { lock: true },
    );
    const change = state.change;
    if (!change || !implementedIn(change.environments, outcome.environment, production)) continue;
    for (const command of reaction.toCommands(change)) await react(tx, deps, changeRequestId, cause, command);
  }
}

/** The release events reactToReleaseEvent reacts to; its consumer passes the others by. */
export const RELEASE_LINK_EVENTS: ReadonlySet<string> = new Set([
  ReleaseChangeRequestLinkedSchema.typeName,
  ReleaseChangeRequestUnlinkedSchema.typeName,
]);

/** Links made and removed on the release side are mirrored on the change. */
export async function reactToReleaseEvent(event: CloudEvent, tx: pg.PoolClient, deps: ReactionDeps): Promise<void> {
  let link: {
    releaseId: string;
    changeRequestId: string;
    metadata?: EventMetadata | undefined;
    command: "linkRelease" | "unlinkRelease";
  };
  if (event.type === ReleaseChangeRequestLinkedSchema.typeName) {
    link = { ...decodeEvent(ReleaseChangeRequestLinkedSchema, event), command: "linkRelease" };
  } else if (event.type === ReleaseChangeRequestUnlinkedSchema.typeName) {
    link = { ...decodeEvent(ReleaseChangeRequestUnlinkedSchema, event), command: "unlinkRelease" };
  } else {
    return;
  }
  const changeRequestId = link.changeRequestId.toLowerCase();
  if (!/^[0-9a-f-]{36}$/.test(changeRequestId)) {
    // Linked before the release service required a UUID: no change request can have this id,
    // so there is nothing to mirror, as for a link to a change this service does not know.
    deps.logger.info(
      { changeRequestId: link.changeRequestId, eventId: event.id },
      `${event.type} names no change request id: nothing to mirror`,
    );
    return;
  }
  await react(tx, deps, changeRequestId, reactionOrigin(event, link.metadata), {
    kind: link.command,
    releaseId: link.releaseId.toLowerCase(),
    // Ordered per release, so a replay of an older link or unlink changes nothing.
    releaseEventVersion: link.metadata?.streamVersion ?? 0n,
  });
}
