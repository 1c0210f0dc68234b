import { type Command, type CommandHandler, isRuleViolation, reactionOrigin } from "@rdm/command-handler";
import type { CloudEvent } from "@rdm/messaging";
import type { Logger } from "@rdm/observability";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type pg from "pg";
import type { ReleaseEvent, ReleaseState } from "../domain/release.js";
import type { ReleaseServiceEvent } from "../store/event-codec.js";

/** What the release service's reactions to other services' events need. */
export interface ReleaseReactionDeps {
  handler: CommandHandler<ReleaseServiceEvent>;
  logger: Logger;
}

/**
 * A reaction's command on a release, in the consumer's transaction, caused by `event` (and in its
 * correlation). A refusal (a release this service does not know, one closed or moved on) is
 * logged as `reaction` skipped, with `about`, and passed by: retrying would be refused again.
 */
export async function reactOnRelease(
  deps: ReleaseReactionDeps,
  tx: pg.PoolClient,
  cause: { event: CloudEvent; metadata: EventMetadata | undefined },
  command: Command<ReleaseState, ReleaseEvent>,
  skipped: { reaction: string; about: Record<string, unknown> },
): Promise<void> {
  try {
    await deps.handler.handleIn(tx, reactionOrigin(cause.event, cause.metadata), command);
  } catch (error) {
    if (!isRuleViolation(error)) throw error;
    deps.logger.info(
      { ...skipped.about, rule: error.rule, causationId: cause.event.id },
      `${skipped.reaction} reaction skipped: ${error.message}`,
    );
  }
}
