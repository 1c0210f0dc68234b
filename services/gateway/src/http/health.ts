import type { FastifyPluginAsync } from "fastify";
import type pg from "pg";

export interface HealthOptions {
  pool: pg.Pool;
  /** Readiness beyond the database: e.g. the projection consumers have joined their groups. */
  isReady: () => boolean;
}

/** The public probes: liveness, and readiness (database reachable, consumers joined). */
export const health: FastifyPluginAsync<HealthOptions> = async (app, { pool, isReady }) => {
  app.get("/healthz", { schema: { hide: true } }, async () => ({ status: "ok" }));
  app.get("/readyz", { schema: { hide: true } }, async (_request, reply) => {
    try {
      await pool.query("SELECT 1");
    } catch {
      return reply.code(503).send({ status: "database unavailable" });
    }
    if (!isReady()) return reply.code(503).send({ status: "consumers starting" });
    return { status: "ready" };
  });
};
