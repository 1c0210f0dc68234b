import type { FastifyPluginAsync } from "fastify";

export interface HealthOptions {
  /** The last probe of the database reached it (`watchDatabase`: a probe that hangs fails within its timeout). */
  databaseAvailable: () => boolean;
  /** Readiness beyond the database: e.g. the projection consumers have joined their groups. */
  isReady: () => boolean;
}

/** The public probes: liveness, and readiness (database reachable, consumers joined). */
export const health: FastifyPluginAsync<HealthOptions> = async (app, { databaseAvailable, isReady }) => {
  app.get("/healthz", { schema: { hide: true } }, async () => ({ status: "ok" }));
  app.get("/readyz", { schema: { hide: true } }, async (_request, reply) => {
    // From the watch, not a query of its own: a server that hangs would hold the probe for the
    // pool's connection timeout (30 s), past any prober's timeout.
    if (!databaseAvailable()) return reply.code(503).send({ status: "database unavailable" });
    if (!isReady()) return reply.code(503).send({ status: "consumers starting" });
    return { status: "ready" };
  });
};
