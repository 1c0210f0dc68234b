import { type CommandHandler, type DomainEvent, isRuleViolation, reactionOrigin } from "@rdm/command-handler";
import { type CloudEvent, decodeEvent } from "@rdm/messaging";
import type { Logger } from "@rdm/observability";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { ReleaseAbandonedSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type pg from "pg";
import { ownDeploymentCommand } from "../api/commands.js";

/** The states a deployment is cancelled in (not begun: a running one is rolled back by hand). */
const NOT_BEGUN = [DeploymentState.PLANNED, DeploymentState.AWAITING_APPROVAL, DeploymentState.SCHEDULED];

/**
 * An abandoned release takes back its deployments that have not begun (planned, awaiting their
 * approval, scheduled for a window ahead): each is cancelled, as the release's abandoner, with the
 * abandonment's reason. A running one is left to a deployer (rolled back or finished by hand). In
 * the release consumer's transaction, after the gate facts: a redelivery or replay finds them
 * cancelled and changes nothing (the refusal is logged).
 */
export async function cancelDeploymentsOfAbandoned(
  event: CloudEvent,
  tx: pg.PoolClient,
  deps: { handler: CommandHandler<DomainEvent>; logger: Logger },
): Promise<void> {
  if (event.type !== ReleaseAbandonedSchema.typeName) return;
  const abandoned = decodeEvent(ReleaseAbandonedSchema, event);
  const { rows } = await tx.query<{ deployment_id: string }>(
    "SELECT deployment_id FROM deployments WHERE release_id = $1 AND state = ANY($2) ORDER BY created_at",
    [abandoned.releaseId, NOT_BEGUN],
  );
  const origin = reactionOrigin(event, abandoned.metadata);
  const reason = `release ${abandoned.releaseId} was abandoned: ${abandoned.reason}`;
  for (const { deployment_id: deploymentId } of rows) {
    try {
      await deps.handler.handleIn(tx, origin, ownDeploymentCommand(deploymentId, { kind: "cancelDeployment", reason }));
    } catch (error) {
      if (!isRuleViolation(error)) throw error;
      deps.logger.info(
        { deployment_id: deploymentId, rule: error.rule, causation_id: event.id },
        `deployment not cancelled with its abandoned release: ${error.message}`,
      );
    }
  }
}
