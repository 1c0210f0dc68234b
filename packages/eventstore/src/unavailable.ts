/** SQLSTATE classes that say the server cannot serve now: 08 connection exception, 57P shutting down / starting up. */
const UNAVAILABLE_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[1-4])$/;
/** Socket errors of a connection to a server that is gone or not listening. */
const CONNECTION_ERRNO = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"]);
/** What pg and pg-pool say when a connection ends under a query, or cannot be had in time. */
const CONNECTION_MESSAGE =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/**
 * The database is unreachable, restarting or shutting down: not the request's fault, and a
 * retry later may succeed (gRPC UNAVAILABLE, HTTP 503). Also true for an AggregateError of such
 * errors (a host name with several addresses) and for an error caused by one.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    if (error.name === "error" && UNAVAILABLE_SQLSTATE.test(code)) return true;
    if (CONNECTION_ERRNO.has(code)) return true;
  }
  if (CONNECTION_MESSAGE.test(error.message)) return true;
  if (error instanceof AggregateError && error.errors.some(isDatabaseUnavailable)) return true;
  return error.cause !== undefined && error.cause !== error && isDatabaseUnavailable(error.cause);
}
