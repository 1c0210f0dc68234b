import { Unavailable } from "../errors.js";
import type { HealthService } from "../health.js";
import type { Interceptor } from "../interceptor.js";

/** The interceptor, and how to answer the calls it let through when their service stops serving. */
export interface ServingGate {
  interceptor: Interceptor;
  /**
   * Answers UNAVAILABLE (`NOT_SERVING`) at once every call in flight of this service (full name),
   * or of every service without one. Their handlers run on; what they answer later is dropped.
   */
  failCallsInFlight(service: string | undefined): void;
}

/**
 * Refuses a call at once with UNAVAILABLE while health says its service is NOT_SERVING (the
 * database watch found the database away): otherwise, while the database hangs rather than
 * refuses, a call would wait for a pool connection until the pool's timeout, and clients
 * retrying on UNAVAILABLE would never learn to back off. Runs after validation, so a malformed
 * request is still told what is wrong with it.
 *
 * A call already in flight when its service stops serving waits on a database that does not
 * answer; `failCallsInFlight` tells its client so instead of holding it, without a deadline,
 * for the whole outage. Whether its command took effect is unknown (its transaction may commit
 * when the server answers again): UNAVAILABLE says to retry, and the same request id makes the
 * retry safe either way.
 */
export function servingGate(health: Pick<HealthService, "isServing">): ServingGate {
  const inFlight = new Set<{ service: string; fail(error: Error): void }>();
  const interceptor: Interceptor = (next) => async (request, ctx) => {
    const service = ctx.method.parent.typeName;
    if (!health.isServing(service))
      throw new Unavailable(
        "service unavailable: not serving now (its database does not answer, or it is shutting down), retry later",
        "NOT_SERVING",
      );
    const call = { service, fail: (_error: Error) => {} };
    const failed = new Promise<never>((_, reject) => {
      call.fail = reject;
    });
    inFlight.add(call);
    // As a promise even if the chain throws at once, so the entry always goes in `finally`.
    const handled = (async () => next(request, ctx))();
    try {
      return await Promise.race([handled, failed]);
    } finally {
      inFlight.delete(call);
      // After a failCallsInFlight, the handler's own failure has nobody to go to.
      handled.catch(() => undefined);
    }
  };
  return {
    interceptor,
    failCallsInFlight(service) {
      const error = new Unavailable(
        "service unavailable: its database stopped answering while the call was in flight; whether it took effect is unknown: retry with the same request id",
        "NOT_SERVING",
      );
      for (const call of inFlight) if (service === undefined || call.service === service) call.fail(error);
    },
  };
}
