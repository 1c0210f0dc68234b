import { randomUUID } from "node:crypto";
import { type CommandHandler, isRuleViolation } from "@rdm/command-handler";
import { withTransaction } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import { type Poller, startPoller } from "@rdm/runtime";
import type pg from "pg";
import type { ReleaseServiceEvent } from "../store/event-codec.js";
import { releaseCommand } from "../store/releases.js";
import { SCHEDULER_ACTOR } from "./deadline-scheduler.js";

/**
 * Reports tasks still open at their due time, from the durable table release_task_deadlines,
 * as the phase deadline scheduler does: a row is claimed with FOR UPDATE SKIP LOCKED and marked
 * fired in the transaction that appends ReleaseTaskOverdue (and its notification to the assignee
 * and the coordinator), so each task is reported once across replicas and restarts. A task done,
 * cancelled or left behind with its phase by then is skipped with the rule that refused it.
 */
export function startTaskDeadlineScheduler(options: {
  pool: pg.Pool;
  handler: CommandHandler<ReleaseServiceEvent>;
  clock: () => Date;
  intervalMs: number;
  logger: Logger;
}): Poller {
  const { pool, handler, clock, logger } = options;

  const fireOne = () =>
    withTransaction(pool, async (tx) => {
      const now = clock();
      const { rows } = await tx.query<{ release_id: string; task_id: string }>(
        `SELECT release_id, task_id FROM release_task_deadlines
         WHERE fired_at IS NULL AND due_at <= $1
         ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [now],
      );
      const row = rows[0];
      if (!row) return false;
      let outcome = "fired";
      try {
        await handler.handleIn(
          tx,
          { actor: SCHEDULER_ACTOR, requestId: randomUUID() },
          releaseCommand(row.release_id, () => ({ kind: "markTaskOverdue", taskId: row.task_id })),
        );
      } catch (error) {
        if (!isRuleViolation(error)) throw error;
        outcome = `skipped: ${error.rule}`;
      }
      await tx.query(
        "UPDATE release_task_deadlines SET fired_at = $3, outcome = $4 WHERE release_id = $1 AND task_id = $2",
        [row.release_id, row.task_id, now, outcome],
      );
      logger.info({ release_id: row.release_id, task_id: row.task_id, outcome }, "task deadline handled");
      return true;
    });

  return startPoller(
    "task-deadline-scheduler",
    options.intervalMs,
    async () => {
      let handled = 0;
      while (await fireOne()) handled++;
      return handled;
    },
    logger,
  );
}
