import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import type { TokenVerifier } from "@rdm/auth";
import { isDatabaseUnavailable, isDataException } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import { UUID_PATTERN } from "@rdm/runtime/process";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type RouteOptions,
} from "fastify";
import type pg from "pg";
import { authenticateReader } from "./http/authenticated.js";
import { refuseWhileDatabaseAway } from "./http/database-gate.js";
import { health } from "./http/health.js";
import { lazySchemaCompilers } from "./http/lazy-schemas.js";
import {
  badRequest,
  databaseUnavailable,
  PROBLEM_CONTENT_TYPE,
  problem,
  problemSchema,
  refuseNonDecimalIntegers,
  refuseNulCharacters,
  sendProblem,
} from "./http/problems.js";
import { auditRoutes } from "./http/routes/audit/index.js";
import { calendarRoutes } from "./http/routes/calendar/index.js";
import { changeRoutes } from "./http/routes/changes/index.js";
import { configurationRoutes } from "./http/routes/configuration/index.js";
import { deploymentRoutes } from "./http/routes/deployments/index.js";
import { inventoryRoutes } from "./http/routes/inventory/index.js";
import { kpiRoutes } from "./http/routes/kpis/index.js";
import { overviewRoutes } from "./http/routes/overview/index.js";
import { releaseRoutes } from "./http/routes/releases/index.js";
import { createEventStreams } from "./http/sse.js";
import { answerUnknownRoutes } from "./http/unknown-routes.js";

/**
 * The validator's message, with the values an enum allows (it says only "one of the allowed
 * values"), and an id that is no UUID said so rather than with the UUID pattern.
 */
function validationDetail(error: FastifyError): string {
  const first = error.validation?.[0];
  if (first?.keyword === "pattern" && first.params.pattern === UUID_PATTERN) {
    return `${error.validationContext ?? ""}${first.instancePath} must be a UUID`;
  }
  const allowed = error.validation?.flatMap((v) => (v.keyword === "enum" ? [v.params.allowedValues] : []))[0];
  return Array.isArray(allowed) ? `${error.message} (${allowed.join(", ")})` : error.message;
}

export interface GatewayAppOptions {
  pool: pg.Pool;
  verifier: TokenVerifier;
  logger: Logger;
  /** Readiness: the database answers (see `watchDatabase`) ... */
  databaseAvailable: () => boolean;
  /** ... and beyond it, e.g. the projection consumers have joined their groups. */
  isReady: () => boolean;
  /**
   * Calls its listener each time the database is found gone: the requests then waiting on it are
   * answered 503 at once rather than held for the whole outage.
   */
  onDatabaseLost?: (listener: () => void) => void;
  /** Compile every route's schemas when the server starts, not on first use (tests: a bad schema fails at once). */
  compileSchemasAtStart?: boolean;
}

/** Path parameters as long as the services take (see the router options below). */
const MAX_PARAM_LENGTH = 2048;

const openApi = {
  openapi: {
    info: {
      title: "Release & Deployment Management gateway",
      version: "1.0.0",
      description: "Read models built from the platform's Kafka topics.",
    },
    components: { securitySchemes: { bearer: { type: "http" as const, scheme: "bearer", bearerFormat: "JWT" } } },
    security: [{ bearer: [] }],
  },
};

/**
 * The HTTP read side. Public context: the probes and the API docs. Authenticated context:
 * every /v1 route family, each a plugin with its schemas, queries and handlers. Any other path
 * is authenticated first, then 404 (405 for a known path asked with another method).
 */
export async function buildGatewayApp({
  pool,
  verifier,
  logger,
  databaseAvailable,
  isReady,
  onDatabaseLost,
  compileSchemasAtStart = false,
}: GatewayAppOptions): Promise<FastifyInstance> {
  const { compileAll, ...compilersFactory } = lazySchemaCompilers();
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    ajv: { customOptions: { coerceTypes: true, removeAdditional: false } },
    schemaController: { compilersFactory },
    // Path parameters as long as the services take (an environment name of 100 characters is up
    // to 1,200 once percent-encoded); the routes' schemas and look-ups answer for their content.
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    clientErrorHandler: answerClientErrors,
    // A URL the router cannot take (a bad percent-encoding, a parameter longer still) is a problem
    // answer like any other, not Fastify's own body.
    frameworkErrors: (error, request, reply) => {
      request.log.info({ err: error }, "request URL refused");
      const status = error.statusCode ?? 400;
      return sendProblem(reply as FastifyReply, status, status === 414 ? "URI Too Long" : "Bad Request", error.message);
    },
  });
  answerUnknownRoutes(app, verifier, MAX_PARAM_LENGTH); // before any route is added
  // After every route's compilers exist (fastify builds them as the server gets ready).
  if (compileSchemasAtStart) app.addHook("onReady", async () => compileAll());
  await app.register(swagger, openApi);
  await app.register(swaggerUi, { routePrefix: "/docs" });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) return badRequest(reply, validationDetail(error));
    // A value the route schemas let through but the database cannot take: the client's error.
    if (isDataException(error)) {
      request.log.info({ err: error }, "request value refused by the database");
      return badRequest(reply, "a parameter is malformed or out of range (e.g. it contains a NUL character)");
    }
    if (isDatabaseUnavailable(error)) {
      request.log.warn({ err: error }, "database unavailable");
      return databaseUnavailable(reply);
    }
    // Fastify's own refusals of a request (a body that is no JSON, too large, an unsupported
    // media type): the client's error, said as Fastify says it.
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      request.log.info({ err: error }, "request refused");
      const title = STATUS_CODES[error.statusCode] ?? "Bad Request";
      return sendProblem(reply, error.statusCode, title, error.message);
    }
    request.log.error({ err: error }, "request failed");
    return sendProblem(reply, 500, "Internal Server Error", "unexpected error");
  });

  await app.register(health, { databaseAvailable, isReady });
  const streams = createEventStreams(app, pool, logger);
  await app.register(async (api) => {
    api.addHook("onRoute", documentCommonResponses);
    api.addHook("onRequest", authenticateReader(verifier));
    api.addHook("preValidation", refuseNulCharacters);
    api.addHook("preValidation", refuseNonDecimalIntegers);
    refuseWhileDatabaseAway(api, databaseAvailable, onDatabaseLost);
    const options = { pool, streams };
    await api.register(releaseRoutes, options);
    await api.register(configurationRoutes, options);
    await api.register(changeRoutes, options);
    await api.register(deploymentRoutes, options);
    // The combined views, each built from several services' events.
    for (const routes of [overviewRoutes, calendarRoutes, inventoryRoutes, kpiRoutes, auditRoutes])
      await api.register(routes, options);
  });
  return app;
}

const problemResponse = (description: string) => ({ description, ...problemSchema });

/**
 * What every authenticated route may answer besides its own responses, in the OpenAPI document:
 * 400 (a path or query parameter it does not take: an unknown one, a NUL character), 401 (no
 * valid token), 403 (a role that may not read), 503 (the database is away) as problems; and for a
 * Server-Sent Events route (`/events`), its 200 stream. A route without query parameters takes
 * none. Every error answer is documented as `application/problem+json`, as it is sent.
 */
function documentCommonResponses(route: RouteOptions): void {
  route.schema ??= {};
  route.schema.querystring ??= { type: "object", properties: {}, additionalProperties: false };
  route.schema.response ??= {};
  const response = route.schema.response as Record<string, unknown>;
  if (route.url.endsWith("/events")) {
    response[200] ??= {
      description: "A text/event-stream: one event per projected change (id, event, data as JSON); kept open",
      content: { "text/event-stream": { schema: { type: "string" } } },
    };
    response[400] ??= problemResponse("A query parameter or Last-Event-ID is not valid");
  }
  response[400] ??= problemResponse("A path or query parameter is not valid");
  response[401] ??= problemResponse("No valid bearer token");
  response[403] ??= problemResponse("The token's roles may not read this");
  response[503] ??= problemResponse("The database is unavailable; retry (Retry-After)");
  for (const [status, schema] of Object.entries(response)) {
    if (Number(status) < 400 || (schema as { content?: unknown }).content) continue;
    const { description, ...body } = schema as { description?: string };
    response[status] = {
      ...(description ? { description } : {}),
      content: { [PROBLEM_CONTENT_TYPE]: { schema: body } },
    };
  }
}

/**
 * What Node's HTTP parser refuses before any route (a header block over 16 KB, a malformed
 * request, a request too slow) as a problem answer, like every other error; the connection ends.
 */
function answerClientErrors(error: NodeJS.ErrnoException, socket: Duplex): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, title, detail] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [431, "Request Header Fields Too Large", "the request's headers are larger than the server takes (16 KB)"]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", "the request did not arrive in time"]
        : [400, "Bad Request", "the request is not valid HTTP"];
  const body = JSON.stringify(problem(status, title, detail));
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${title}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Content-Type: ${PROBLEM_CONTENT_TYPE}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
