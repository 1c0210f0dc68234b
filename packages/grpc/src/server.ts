import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import {
  create,
  type DescMessage,
  type DescMethod,
  fromBinary,
  isMessage,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { GenService, GenServiceMethods } from "@bufbuild/protobuf/codegenv2";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import {
  status as GrpcStatus,
  Metadata,
  Server,
  ServerCredentials,
  type ServerReadableStream,
  type ServerUnaryCall,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { type Histogram, SpanStatusCode } from "@opentelemetry/api";
import {
  Unauthenticated as AuthUnauthenticated,
  hasAnyRole,
  isRole,
  type Principal,
  type Role,
  type TokenVerifier,
} from "@rdm/auth";
import { currentTraceparent, inSpan, type Logger, meter, SpanKind, withTraceparent } from "@rdm/observability";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { InvalidArgument, PermissionDenied, statusTrailer, toStatus, Unauthenticated } from "./errors.js";
import { HEALTH_SERVICE, HealthService } from "./health.js";
import { checkRequestInputRules } from "./request-input-rules.js";
import { methodPath, rawServiceDefinition } from "./service-definition.js";

/** What a handler knows about the call it serves. */
export interface CallContext {
  /** The authenticated caller; record `principal.subject` as the actor of events. */
  principal: Principal;
  /** Child logger carrying `rpc` and `request_id` (and trace ids inside the server span). */
  logger: Logger;
  /** Incoming metadata, without the `authorization` entry. */
  metadata: Metadata;
  /** W3C traceparent of the server span: store it with events so consumers continue the trace. */
  traceparent: string | undefined;
  /** `x-request-id` from the caller, or a fresh UUID. Correlates log lines of one call. */
  requestId: string;
  /** Aborted when the client cancels or the deadline passes. */
  signal: AbortSignal;
  method: DescMethod;
}

export type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
) => Promise<MessageInitShape<O>>;

/**
 * A client-streaming handler: `requests` yields each message, decoded and validated, in order
 * (an invalid one throws INVALID_ARGUMENT from the iterator); it ends when the client half-closes.
 */
export type ClientStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  ctx: CallContext,
) => Promise<MessageInitShape<O>>;

/**
 * Handlers of one service, by local (camelCase) method name. Unary and client-streaming
 * methods are served; the other streaming kinds get their own handler shapes here when a
 * service needs them.
 */
export type ServiceHandlers<M extends GenServiceMethods> = {
  [K in keyof M]: M[K]["methodKind"] extends "unary"
    ? UnaryHandler<M[K]["input"], M[K]["output"]>
    : M[K]["methodKind"] extends "client_streaming"
      ? ClientStreamingHandler<M[K]["input"], M[K]["output"]>
      : never;
};

export interface ServiceRegistration<M extends GenServiceMethods = GenServiceMethods> {
  service: GenService<M>;
  handlers: ServiceHandlers<M>;
  /** Roles allowed to call each method (admin always is). Every method needs an entry. */
  roles: { [K in keyof M]: readonly Role[] };
}

export interface GrpcServerOptions<T extends GenServiceMethods[]> {
  logger: Logger;
  verifier: TokenVerifier;
  services: { [I in keyof T]: ServiceRegistration<T[I]> };
  /** Serve gRPC server reflection (v1 and v1alpha) from this descriptor image. */
  reflection?: { imagePath: string };
  /** Default: insecure (TLS is terminated in front of the service). */
  credentials?: ServerCredentials;
  /** How long shutdown() waits for in-flight calls before cancelling them (default 10 s). */
  shutdownGraceMs?: number;
}

export interface GrpcServer {
  /** Binds and starts serving; resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  health: {
    /** Sets the grpc.health.v1 status of one service (full name) or, without one, of the server (""). */
    setServing(service: string | undefined, serving: boolean): void;
  };
  /**
   * Reports NOT_SERVING to health watchers and ends their streams, stops accepting calls, lets
   * in-flight calls finish (up to shutdownGraceMs, then cancels them) and closes.
   */
  shutdown(): Promise<void>;
}

const SERVER_FAULTS = new Set([
  GrpcStatus.UNKNOWN,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.UNIMPLEMENTED,
  GrpcStatus.INTERNAL,
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DATA_LOSS,
]);

type Outcome = { ok: true; response: Buffer } | { ok: false; code: GrpcStatus; message: string; trailer: Metadata };

/**
 * A gRPC server for protobuf-es services. Every call is traced, authenticated, authorized by
 * role and validated with protovalidate before its handler runs; handler errors become gRPC
 * statuses with google.rpc details. Health and reflection are served without a token.
 */
export function createGrpcServer<T extends GenServiceMethods[]>(options: GrpcServerOptions<T>): GrpcServer {
  const { logger, verifier } = options;
  const registrations = options.services as unknown as ServiceRegistration[];
  const server = new Server();
  const validator = createValidator();
  let latency: Histogram | undefined;
  // Created on first use: the metrics SDK may be registered after the server is built.
  const recordLatency = (ms: number, attributes: Record<string, string | number>) => {
    latency ??= meter().createHistogram("rpc.server.duration", { unit: "ms", description: "Duration of gRPC calls" });
    latency.record(ms, attributes);
  };

  for (const registration of registrations) checkRegistration(registration);

  for (const { service, handlers, roles } of registrations) {
    const implementation: UntypedServiceImplementation = {};
    for (const method of service.methods) {
      const allowed = roles[method.localName] as readonly Role[];
      const answer = (outcome: Promise<Outcome>, callback: sendUnaryData<Buffer>) => {
        void outcome
          .catch((error: unknown): Outcome => {
            // Only reachable if logging or tracing itself failed: still answer, never crash.
            logger.error({ err: error, rpc: methodPath(method) }, "gRPC call pipeline failed");
            return { ok: false, code: GrpcStatus.INTERNAL, message: "internal error", trailer: new Metadata() };
          })
          .then((outcome) => {
            if (outcome.ok) callback(null, outcome.response);
            else callback({ code: outcome.code, details: outcome.message, metadata: outcome.trailer });
          });
      };
      if (method.methodKind === "client_streaming") {
        const handler = handlers[method.localName] as unknown as ClientStreamingHandler<DescMessage, DescMessage>;
        implementation[method.localName] = (
          call: ServerReadableStream<Buffer, Buffer>,
          callback: sendUnaryData<Buffer>,
        ) =>
          answer(
            serveCall(method, allowed, call, (ctx) => handler(decodeStream(method.input, call), ctx)),
            callback,
          );
        continue;
      }
      const handler = handlers[method.localName] as unknown as UnaryHandler<DescMessage, DescMessage>;
      implementation[method.localName] = (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) =>
        answer(
          serveCall(method, allowed, call, (ctx) => {
            const request = decode(method.input, call.request);
            validate(method.input, request);
            return handler(request, ctx);
          }),
          callback,
        );
    }
    server.addService(rawServiceDefinition(service), implementation);
  }

  /** The pipeline every call goes through; `run` decodes the request(s) and calls the handler. */
  async function serveCall(
    method: DescMethod,
    allowed: readonly Role[],
    call: ServerUnaryCall<Buffer, Buffer> | ServerReadableStream<Buffer, Buffer>,
    run: (ctx: CallContext) => Promise<MessageInitShape<DescMessage>>,
  ): Promise<Outcome> {
    const started = performance.now();
    const rpc = methodPath(method);
    const requestId = firstString(call.metadata, "x-request-id") ?? randomUUID();
    let subject: string | undefined;
    const outcome = await withTraceparent(firstString(call.metadata, "traceparent"), () =>
      inSpan(
        rpc.slice(1),
        {
          kind: SpanKind.SERVER,
          attributes: { "rpc.system": "grpc", "rpc.service": method.parent.typeName, "rpc.method": method.name },
        },
        async (span): Promise<Outcome> => {
          const log = logger.child({ rpc, request_id: requestId });
          try {
            const principal = await authenticate(call.metadata);
            subject = principal.subject;
            span.setAttribute("enduser.id", principal.subject);
            if (!hasAnyRole(principal, allowed)) {
              throw new PermissionDenied(
                `${method.name} requires one of the roles: ${[...allowed, "admin"].join(", ")} (caller has: ${principal.roles.join(", ") || "none"})`,
                "MISSING_ROLE",
                { required_roles: allowed.join(",") },
              );
            }
            const controller = new AbortController();
            call.on("cancelled", () => controller.abort(new Error("call cancelled by the client")));
            const metadata = call.metadata.clone();
            metadata.remove("authorization");
            const response = await run({
              principal,
              logger: log,
              metadata,
              traceparent: currentTraceparent(),
              requestId,
              signal: controller.signal,
              method,
            });
            const output = isMessage(response, method.output) ? response : create(method.output, response);
            span.setAttribute("rpc.grpc.status_code", GrpcStatus.OK);
            return { ok: true, response: Buffer.from(toBinary(method.output, output)) };
          } catch (error) {
            const mapped = toStatus(error);
            // Logged once, here, with context; the caller only sees a generic message.
            if (mapped.internal) log.error({ err: error, subject }, "gRPC handler failed");
            span.setAttribute("rpc.grpc.status_code", mapped.code);
            if (SERVER_FAULTS.has(mapped.code)) {
              if (error instanceof Error) span.recordException(error);
              span.setStatus({ code: SpanStatusCode.ERROR, message: mapped.message });
            }
            return { ok: false, code: mapped.code, message: mapped.message, trailer: statusTrailer(mapped) };
          }
        },
      ),
    );
    const durationMs = performance.now() - started;
    const code = outcome.ok ? GrpcStatus.OK : outcome.code;
    recordLatency(durationMs, {
      "rpc.service": method.parent.typeName,
      "rpc.method": method.name,
      "rpc.grpc.status_code": code,
    });
    logger.info(
      {
        rpc,
        code: GrpcStatus[code],
        duration_ms: Math.round(durationMs * 1000) / 1000,
        subject,
        request_id: requestId,
      },
      "gRPC call",
    );
    return outcome;
  }

  async function authenticate(metadata: Metadata): Promise<Principal> {
    const header = firstString(metadata, "authorization");
    if (!header)
      throw new Unauthenticated("unauthenticated: no bearer token in the authorization metadata", "missing_token");
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match)
      throw new Unauthenticated('unauthenticated: authorization metadata must be "Bearer <token>"', "malformed_token");
    try {
      return await verifier.verify(match[1]);
    } catch (error) {
      if (error instanceof AuthUnauthenticated) {
        throw new Unauthenticated(`unauthenticated: ${error.message}`, error.reason);
      }
      throw error;
    }
  }

  function decode<Desc extends DescMessage>(schema: Desc, bytes: Buffer): MessageShape<Desc> {
    try {
      return fromBinary(schema, bytes);
    } catch (error) {
      throw new InvalidArgument([], `request is not a valid ${schema.typeName}: ${(error as Error).message}`);
    }
  }

  async function* decodeStream<Desc extends DescMessage>(
    schema: Desc,
    call: ServerReadableStream<Buffer, Buffer>,
  ): AsyncGenerator<MessageShape<Desc>> {
    for await (const bytes of call as AsyncIterable<Buffer>) {
      const message = decode(schema, bytes);
      validate(schema, message);
      yield message;
    }
  }

  function validate<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): void {
    checkRequestInputRules(schema, message);
    const result = validator.validate(schema, message);
    if (result.kind === "valid") return;
    if (result.kind === "error") throw result.error;
    throw new InvalidArgument(
      result.violations.map((v) => ({ field: pathToString(v.field), description: v.message, reason: v.ruleId })),
    );
  }

  // Health: every registered service and the server as a whole ("") start SERVING.
  const health = new HealthService(
    Object.fromEntries(["", ...registrations.map((r) => r.service.typeName)].map((n) => [n, true])),
  );
  health.addToServer(server);

  if (options.reflection) {
    const image = protoLoader.loadFileDescriptorSetFromBuffer(readFileSync(options.reflection.imagePath));
    const healthDefinition = protoLoader.loadSync("health/v1/health.proto", {
      includeDirs: [healthProtoPath.replace(/health\/v1\/health\.proto$/, "")],
    });
    new ReflectionService(
      { ...image, ...healthDefinition },
      { services: [...registrations.map((r) => r.service.typeName), HEALTH_SERVICE] },
    ).addToServer(server);
  }

  let listening = false;
  return {
    listen(host, port) {
      const address = host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
      return new Promise((resolve, reject) => {
        server.bindAsync(address, options.credentials ?? ServerCredentials.createInsecure(), (error, boundPort) => {
          if (error) return reject(error);
          listening = true;
          logger.info({ address, port: boundPort }, "gRPC server listening");
          resolve(boundPort);
        });
      });
    },
    health: {
      setServing(service, serving) {
        health.setServing(service ?? "", serving);
      },
    },
    async shutdown() {
      // Watchers learn NOT_SERVING and their streams end, so only real calls hold shutdown up.
      health.stopAll();
      if (!listening) {
        server.forceShutdown();
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const graceful = new Promise<boolean>((resolve) => {
        server.tryShutdown(() => resolve(true));
        timer = setTimeout(() => resolve(false), options.shutdownGraceMs ?? 10_000);
      });
      const drained = await graceful;
      clearTimeout(timer);
      if (!drained) {
        logger.warn(
          { graceMs: options.shutdownGraceMs ?? 10_000 },
          "gRPC calls still running after the grace period; cancelling them",
        );
        server.forceShutdown();
      }
      listening = false;
      logger.info("gRPC server stopped");
    },
  };
}

function checkRegistration({ service, handlers, roles }: ServiceRegistration): void {
  const problems: string[] = [];
  for (const method of service.methods) {
    const name = `${service.typeName}.${method.name} (${method.localName})`;
    if (method.methodKind !== "unary" && method.methodKind !== "client_streaming")
      problems.push(`${name}: ${method.methodKind} methods are not supported yet`);
    if (typeof handlers[method.localName] !== "function") problems.push(`${name}: no handler`);
    const allowed = roles[method.localName] as unknown;
    // No silent open RPC: every method states who may call it.
    if (!Array.isArray(allowed)) problems.push(`${name}: no roles entry`);
    else for (const role of allowed) if (!isRole(role)) problems.push(`${name}: unknown role "${String(role)}"`);
  }
  for (const key of Object.keys(handlers)) {
    if (!service.method[key]) problems.push(`${service.typeName}: handler "${key}" matches no method`);
  }
  for (const key of Object.keys(roles)) {
    if (!service.method[key]) problems.push(`${service.typeName}: roles entry "${key}" matches no method`);
  }
  if (problems.length > 0) throw new Error(`invalid gRPC service registration:\n- ${problems.join("\n- ")}`);
}

function firstString(metadata: Metadata, key: string): string | undefined {
  const value = metadata.get(key)[0];
  return typeof value === "string" && value.length > 0 ? value : undefined;
}
