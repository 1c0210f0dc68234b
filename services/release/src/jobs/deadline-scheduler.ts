import type { Poller } from "@rdm/runtime";
import { type DueRowSchedulerOptions, startDueRowScheduler } from "./due-row-scheduler.js";

interface DueDeadline {
  release_id: string;
  phase_entry: number;
  kind: "missed" | "escalation";
}

/**
 * Fires due phase deadlines from the durable table release_deadlines, each once (see
 * startDueRowScheduler). The decider refuses a second miss for the same phase entry as a last
 * line of defence.
 */
export const startDeadlineScheduler = (options: DueRowSchedulerOptions): Poller =>
  startDueRowScheduler<DueDeadline>(
    {
      name: "deadline-scheduler",
      table: "release_deadlines",
      keys: ["release_id", "phase_entry", "kind"],
      command: (row) =>
        row.kind === "missed"
          ? { kind: "markDeadlineMissed", phaseEntry: row.phase_entry }
          : { kind: "escalateDeadline", phaseEntry: row.phase_entry },
    },
    options,
  );
