import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import { hasAnyRole, type TokenVerifier } from "@rdm/auth";
import { isDatabaseUnavailable, isDataException } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from "fastify";
import type pg from "pg";
import { createNotificationHub } from "./notification-hub.js";
import { RELEASE_HISTORY_CHANNEL } from "./projections/releases.js";
import { changeRoutes } from "./routes/changes.js";
import { configurationRoutes } from "./routes/configuration.js";
import { deploymentRoutes } from "./routes/deployments.js";
import { refuseNonDecimalIntegers } from "./routes/http.js";
import { releaseRoutes } from "./routes/releases.js";

export interface GatewayAppOptions {
  pool: pg.Pool;
  verifier: TokenVerifier;
  logger: Logger;
  /** Readiness beyond the database: e.g. the projection consumers have joined their groups. */
  isReady: () => boolean;
}

const PUBLIC_PATHS = ["/healthz", "/readyz", "/docs"];
const READ_ROLES = [
  "viewer",
  "release-manager",
  "release-coordinator",
  "approver",
  "change-manager",
  "config-manager",
  "deployer",
] as const;

const problem = (status: number, title: string, detail: string) => ({ type: "about:blank", title, status, detail });

/** The HTTP read side: every /v1 route needs a bearer token with a role that may read. */
export async function buildGatewayApp({
  pool,
  verifier,
  logger,
  isReady,
}: GatewayAppOptions): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: "Release & Deployment Management gateway",
        version: "1.0.0",
        description: "Read models built from the platform's Kafka topics.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.addHook("onRequest", async (request, reply) => {
    if (
      PUBLIC_PATHS.some((p) => request.url === p || request.url.startsWith(`${p}/`) || request.url.startsWith(`${p}?`))
    )
      return;
    const header = request.headers.authorization;
    // The scheme is case-insensitive (RFC 7235), as on the gRPC side.
    const token = header && /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
    if (!token) {
      return reply
        .code(401)
        .header("www-authenticate", "Bearer")
        .send(problem(401, "Unauthorized", "missing bearer token"));
    }
    try {
      const principal = await verifier.verify(token);
      if (!hasAnyRole(principal, [...READ_ROLES])) {
        return reply.code(403).send(problem(403, "Forbidden", `requires one of the roles: ${READ_ROLES.join(", ")}`));
      }
      request.log = request.log.child({ subject: principal.subject });
    } catch (error) {
      return reply
        .code(401)
        .header("www-authenticate", "Bearer")
        .send(problem(401, "Unauthorized", (error as Error).message));
    }
  });

  app.addHook("preValidation", refuseNonDecimalIntegers);

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) return reply.code(400).send(problem(400, "Bad Request", error.message));
    // A value the route schemas let through but the database cannot take: the client's error.
    if (isDataException(error)) {
      request.log.info({ err: error }, "request value refused by the database");
      const detail = "a parameter is malformed or out of range (e.g. it contains a NUL character)";
      return reply.code(400).send(problem(400, "Bad Request", detail));
    }
    if (isDatabaseUnavailable(error)) {
      request.log.warn({ err: error }, "database unavailable");
      return reply
        .code(503)
        .header("retry-after", "1")
        .send(problem(503, "Service Unavailable", "database unavailable"));
    }
    request.log.error({ err: error }, "request failed");
    return reply.code(500).send(problem(500, "Internal Server Error", "unexpected error"));
  });

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

  const releaseNotifications = createNotificationHub(pool, RELEASE_HISTORY_CHANNEL, logger);
  app.addHook("onClose", () => releaseNotifications.close());
  releaseRoutes(app, pool, releaseNotifications);
  configurationRoutes(app, pool);
  changeRoutes(app, pool);
  deploymentRoutes(app, pool);
  return app;
}
