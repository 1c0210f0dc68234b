import { isConflict } from "@rdm/eventstore";

/** PostgreSQL's unique_violation: a key another writer took between the decision and the commit. */
export const isUniqueViolation = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === "23505";

/**
 * PostgreSQL aborted the attempt's transaction to break a deadlock (40P01): two commands waited on
 * each other's row locks (e.g. each reading the other's item with a share lock, then writing its
 * own). The transaction rolled back whole, so the command can be decided again.
 */
export const isDeadlock = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === "40P01";

/** PostgreSQL gave up waiting for a lock after the transaction's lock_timeout (55P03). */
export const isLockNotAvailable = (error: unknown): boolean => (error as { code?: unknown } | null)?.code === "55P03";

/** A refusal that found the stream shorter than the version we decided on: it was rewritten. */
export const isBehindExpected = (error: unknown) => {
  const { expected, actual } = error as { expected?: unknown; actual?: unknown };
  return isConflict(error) && typeof expected === "number" && typeof actual === "number" && actual < expected;
};
