import { timestampDate } from "@bufbuild/protobuf/wkt";
import { type CommandHandler, type DomainEvent, isRuleViolation } from "@rdm/command-handler";
import { withTransaction } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import { type Poller, startPoller } from "@rdm/runtime";
import type pg from "pg";
import { ownDeploymentCommand } from "../api/commands.js";
import { forgetIdleClaims, lockLapsedLease, syncStepQueue } from "../store/step-queue.js";
import { findEnvironment, scheduledDeployments } from "../store/tables.js";

export const SWEEPER_ACTOR = "system:lease-sweep";

/** Lapsed leases handled in one round at most, so a round ends and a stop is never held up long. */
const ROUND_LIMIT = 100;

/** How long ClaimStep's "nothing waiting" answers are kept for a retry (see forgetIdleClaims). */
const IDLE_CLAIM_ANSWERS_KEPT_MS = 60 * 60 * 1000;

/**
 * Returns steps whose lease ran out to the queue when no executor took them over: records
 * DeploymentStepLeaseExpired (the old holder's reports are refused from then on) and makes the
 * step claimable as READY. The queue row is locked with FOR UPDATE SKIP LOCKED and changed in the
 * transaction that appends the event, so with any number of replicas, and claimers taking a step
 * over at the same moment, a lapse is recorded once; a crash before the commit leaves the row for
 * the next round. State lives in step_queue only: a restart loses nothing. Each round also
 * cancels the scheduled deployments whose window ended before any executor came (as their first
 * claim would: they hold their environment until they end), and deletes the idle claims'
 * answers older than `idleClaimAnswersKeptMs` (an hour).
 */
export function startLeaseSweep(options: {
  pool: pg.Pool;
  handler: CommandHandler<DomainEvent>;
  intervalMs: number;
  logger: Logger;
  idleClaimAnswersKeptMs?: number;
}): Poller {
  const { pool, handler, logger, idleClaimAnswersKeptMs = IDLE_CLAIM_ANSWERS_KEPT_MS } = options;

  const expireOne = () =>
    withTransaction(pool, async (tx) => {
      const lapsed = await lockLapsedLease(tx);
      if (!lapsed) return false;
      const command = ownDeploymentCommand(lapsed.deploymentId, { kind: "expireLease", ...lapsed });
      try {
        await handler.handleIn(tx, { actor: SWEEPER_ACTOR, requestId: "" }, command);
        logger.info(
          { deployment_id: lapsed.deploymentId, step_index: lapsed.stepIndex },
          "lease lapsed: step requeued",
        );
      } catch (error) {
        if (!isRuleViolation(error)) throw error;
        // The stream says otherwise (it is the truth): the queue rows are rewritten from it.
        const { state } = await handler.load(tx, command);
        if (!state.deployment) throw error;
        const environment = await findEnvironment(tx, state.deployment.environment);
        await syncStepQueue(tx, state.deployment, undefined, environment?.executorLabels ?? []);
        logger.warn({ deployment_id: lapsed.deploymentId, rule: error.rule }, "lease sweep: queue resynced");
      }
      return true;
    });

  /** Cancels the scheduled deployments whose window has ended; how many. */
  const expireSchedules = async () => {
    const now = new Date();
    const over = (await scheduledDeployments(pool)).filter(
      (deployment) => deployment.window?.end && timestampDate(deployment.window.end) <= now,
    );
    let cancelled = 0;
    for (const { deploymentId } of over.slice(0, ROUND_LIMIT)) {
      const command = ownDeploymentCommand(deploymentId, { kind: "expireSchedule", now });
      // Begun, cancelled or ended meanwhile: the command refuses or does nothing.
      const outcome = await withTransaction(pool, (tx) =>
        handler.handleIn(tx, { actor: SWEEPER_ACTOR, requestId: "" }, command),
      ).catch((error: unknown) => {
        if (isRuleViolation(error)) return undefined;
        throw error;
      });
      if (!outcome?.events.length) continue;
      cancelled++;
      logger.info({ deployment_id: deploymentId }, "scheduled deployment cancelled: its window ended before it began");
    }
    return cancelled;
  };

  return startPoller(
    "lease-sweep",
    options.intervalMs,
    async () => {
      let handled = 0;
      while (handled < ROUND_LIMIT && (await expireOne())) handled++;
      handled += await expireSchedules();
      await forgetIdleClaims(pool, new Date(Date.now() - idleClaimAnswersKeptMs));
      return handled;
    },
    logger,
  );
}
