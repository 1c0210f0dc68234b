import { randomUUID } from "node:crypto";
import { type CommandHandler, isRuleViolation } from "@rdm/command-handler";
import { withTransaction } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import { type Poller, startPoller } from "@rdm/runtime";
import type pg from "pg";
import type { ReleaseCommand } from "../domain/release.js";
import type { ReleaseServiceEvent } from "../store/event-codec.js";
import { releaseCommand } from "../store/releases.js";

export const SCHEDULER_ACTOR = "system:deadline-scheduler";

interface DueRow {
  release_id: string;
  phase_entry: number;
  kind: "missed" | "escalation";
}

/**
 * Fires due phase deadlines from the durable table release_deadlines. Each row is claimed with
 * FOR UPDATE SKIP LOCKED and marked fired in the transaction that appends its event, so with
 * any number of replicas and across restarts a deadline produces its event exactly once: a
 * replica that crashes before commit leaves the row unfired for the next round, and a second
 * replica skips the locked row (and, once committed, no longer selects it). The decider refuses
 * a second miss for the same phase entry as a last line of defence.
 */
export function startDeadlineScheduler(options: {
  pool: pg.Pool;
  handler: CommandHandler<ReleaseServiceEvent>;
  clock: () => Date;
  intervalMs: number;
  logger: Logger;
}): Poller {
  const { pool, handler, clock, logger } = options;

  /** Fires one due deadline; false when none is due (or all due ones are held by other replicas). */
  const fireOne = () =>
    withTransaction(pool, async (tx) => {
      const now = clock();
      const { rows } = await tx.query<DueRow>(
        `SELECT release_id, phase_entry, kind FROM release_deadlines
         WHERE fired_at IS NULL AND due_at <= $1
         ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [now],
      );
      const row = rows[0];
      if (!row) return false;
      const command: ReleaseCommand =
        row.kind === "missed"
          ? { kind: "markDeadlineMissed", phaseEntry: row.phase_entry }
          : { kind: "escalateDeadline", phaseEntry: row.phase_entry };
      let outcome = "fired";
      try {
        await handler.handleIn(
          tx,
          { actor: SCHEDULER_ACTOR, requestId: randomUUID() },
          releaseCommand(row.release_id, () => command),
        );
      } catch (error) {
        // The phase was left in time, the release ended, ...: nothing to report, ever.
        if (!isRuleViolation(error)) throw error;
        outcome = `skipped: ${error.rule}`;
      }
      await tx.query(
        `UPDATE release_deadlines SET fired_at = $4, outcome = $5
         WHERE release_id = $1 AND phase_entry = $2 AND kind = $3`,
        [row.release_id, row.phase_entry, row.kind, now, outcome],
      );
      logger.info(
        { release_id: row.release_id, phase_entry: row.phase_entry, kind: row.kind, outcome },
        "deadline handled",
      );
      return true;
    });

  return startPoller(
    "deadline-scheduler",
    options.intervalMs,
    async () => {
      let handled = 0;
      while (await fireOne()) handled++;
      return handled;
    },
    logger,
  );
}
