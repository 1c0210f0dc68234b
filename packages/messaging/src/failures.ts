import { isConflict, isDataException } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import { MalformedCloudEvent } from "./cloudevents.js";

// How the consumer tells a failure that a retry can cure from one that no retry can: the
// first kind waits (without using up attempts when the database is to blame), the second goes
// to the dead-letter topic at once.

/** Thrown by a handler when no retry can help (e.g. an undecodable protobuf): dead-letter at once. */
export class PermanentError extends Error {
  override readonly name = "PermanentError";
}

/** The database could not be reached: not the message's fault, so it does not use up attempts. */
export class DatabaseUnavailable extends Error {
  override readonly name = "DatabaseUnavailable";
}

/**
 * No retry can help: the handler said so, the message is not a CloudEvent, PostgreSQL refused
 * the event's data itself (SQLSTATE class 22, e.g. an id that is not a uuid), or the command the
 * event led to is invalid whatever the state (a RuleViolation with code INVALID_ARGUMENT, e.g.
 * event.too_large). By name too, so errors from another copy of a package (dist vs src) count.
 */
export function isPermanent(error: Error): boolean {
  return (
    error instanceof PermanentError ||
    error instanceof MalformedCloudEvent ||
    error.name === "PermanentError" ||
    error.name === "MalformedCloudEvent" ||
    (error.name === "RuleViolation" && (error as { code?: unknown }).code === "INVALID_ARGUMENT") ||
    isDataException(error)
  );
}

/**
 * Another writer got there first: a stream appended meanwhile (WrongExpectedVersion), or
 * PostgreSQL's serialization failure (40001). Routine under contention: retried like a transient
 * failure, but not the database's fault. A deadlock is not counted: it says locks are taken in
 * different orders, worth a look.
 */
export function isLostRace(error: Error): boolean {
  return isConflict(error) || (error.name === "error" && (error as { code?: unknown }).code === "40001");
}

/** SQLSTATE classes that say the database, not the event, is the problem. */
const TRANSIENT_SQLSTATE = [
  /^08/, // connection exception
  /^40/, // serialization failure, deadlock: the transaction lost a race
  /^53/, // insufficient resources
  /^57P/, // shutting down, cannot connect now
  /^25006$/, // read-only transaction: a standby during a failover
];
const CONNECTION_ERRNO = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "ENOTFOUND", "EHOSTUNREACH"]);

/**
 * Not the event's fault, so retried without using up an attempt (dead-lettering would lose a
 * good event while the database fails over): PostgreSQL unreachable, shutting down, read-only,
 * out of resources, a lost serialization race, a connection dropped mid-transaction, or another
 * writer that appended to the same stream first (WrongExpectedVersion; the retry re-decides).
 */
export function isTransient(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    if (error.name === "error" && TRANSIENT_SQLSTATE.some((pattern) => pattern.test(code))) return true;
    if (CONNECTION_ERRNO.has(code)) return true;
  }
  return error.name === "WrongExpectedVersion" || /^Connection terminated/.test(error.message);
}

/**
 * Runs `step`, again after a pause (200 ms, doubling up to `maxDelayMs`) while the database
 * cannot be reached: a service that lost PostgreSQL while still starting (it serves meanwhile,
 * NOT_SERVING) waits for it instead of failing its start and exiting. Other errors are thrown.
 */
export async function untilDatabaseAnswers<T>(
  step: () => Promise<T>,
  { logger, what, maxDelayMs = 5_000 }: { logger: Logger; what: string; maxDelayMs?: number },
): Promise<T> {
  for (let delay = 200; ; delay = Math.min(delay * 2, maxDelayMs)) {
    try {
      return await step();
    } catch (error) {
      if (!isTransient(error as Error)) throw error;
      logger.error({ err: error, retry_in_ms: delay }, `database unavailable while ${what}; retrying`);
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
