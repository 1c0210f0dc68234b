import { Unavailable } from "../errors.js";
import type { HealthService } from "../health.js";
import type { Interceptor } from "../interceptor.js";

/**
 * Refuses a call at once with UNAVAILABLE while health says its service is NOT_SERVING (the
 * database watch found the database away): otherwise, while the database hangs rather than
 * refuses, a call would wait for a pool connection until the pool's timeout, and clients
 * retrying on UNAVAILABLE would never learn to back off. Runs after validation, so a malformed
 * request is still told what is wrong with it.
 */
export function refuseWhileNotServing(health: Pick<HealthService, "isServing">): Interceptor {
  return (next) => async (request, ctx) => {
    if (!health.isServing(ctx.method.parent.typeName))
      throw new Unavailable(
        "service unavailable: not serving now (its database does not answer, or it is shutting down), retry later",
        "NOT_SERVING",
      );
    return next(request, ctx);
  };
}
