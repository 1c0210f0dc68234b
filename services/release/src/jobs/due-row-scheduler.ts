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

export interface DueRowSchedulerOptions {
  pool: pg.Pool;
  handler: CommandHandler<ReleaseServiceEvent>;
  clock: () => Date;
  intervalMs: number;
  logger: Logger;
}

/** A durable table of due times: rows with `due_at`, `fired_at` and `outcome`, keyed by `keys`. */
export interface DueRowTable<Row extends { release_id: string }> {
  /** The poller's name, also the log message's subject. */
  name: string;
  table: string;
  /** The primary key's columns; `release_id` among them. */
  keys: readonly (keyof Row & string)[];
  command: (row: Row) => ReleaseCommand;
}

/**
 * Fires due rows of a deadline table, each once across replicas and restarts: a row is claimed
 * with FOR UPDATE SKIP LOCKED and marked fired in the transaction that appends its event, so a
 * replica that crashes before commit leaves it unfired for the next round and a second replica
 * skips the locked row. A command the decider refuses (the phase was left in time, the task is
 * done, the release ended) marks the row skipped with the rule that refused it: nothing to
 * report, ever.
 */
export function startDueRowScheduler<Row extends { release_id: string }>(
  due: DueRowTable<Row>,
  options: DueRowSchedulerOptions,
): Poller {
  const { pool, handler, clock, logger } = options;
  const columns = due.keys.join(", ");
  const claim = `SELECT ${columns} FROM ${due.table}
    WHERE fired_at IS NULL AND due_at <= $1 ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED`;
  const mark = `UPDATE ${due.table} SET fired_at = $1, outcome = $2
    WHERE ${due.keys.map((key, i) => `${key} = $${i + 3}`).join(" AND ")}`;

  /** Fires one due row; false when none is due (or all due ones are held by other replicas). */
  const fireOne = () =>
    withTransaction(pool, async (tx) => {
      const now = clock();
      const row = (await tx.query<Row>(claim, [now])).rows[0];
      if (!row) return false;
      let outcome = "fired";
      try {
        await handler.handleIn(
          tx,
          { actor: SCHEDULER_ACTOR, requestId: randomUUID() },
          releaseCommand(row.release_id, () => due.command(row), { sizeLimited: false }),
        );
      } catch (error) {
        if (!isRuleViolation(error)) throw error;
        outcome = `skipped: ${error.rule}`;
      }
      await tx.query(mark, [now, outcome, ...due.keys.map((key) => row[key])]);
      const fields: Record<string, unknown> = { ...row, outcome };
      logger.info(fields, `${due.name}: deadline handled`);
      return true;
    });

  return startPoller(
    due.name,
    options.intervalMs,
    async () => {
      let handled = 0;
      while (await fireOne()) handled++;
      return handled;
    },
    logger,
  );
}
