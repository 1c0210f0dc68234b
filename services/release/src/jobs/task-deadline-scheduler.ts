import type { Poller } from "@rdm/runtime";
import { type DueRowSchedulerOptions, startDueRowScheduler } from "./due-row-scheduler.js";

/**
 * Reports tasks still open at their due time, from the durable table release_task_deadlines,
 * each once (see startDueRowScheduler), with ReleaseTaskOverdue and its notification to the
 * assignee and the coordinator. A task done, cancelled or left behind with its phase by then is
 * skipped with the rule that refused it.
 */
export const startTaskDeadlineScheduler = (options: DueRowSchedulerOptions): Poller =>
  startDueRowScheduler<{ release_id: string; task_id: string }>(
    {
      name: "task-deadline-scheduler",
      table: "release_task_deadlines",
      keys: ["release_id", "task_id"],
      command: (row) => ({ kind: "markTaskOverdue", taskId: row.task_id }),
    },
    options,
  );
