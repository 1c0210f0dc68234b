import { randomUUID } from "node:crypto";
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
import { isRole, type Role, type TokenVerifier } from "@rdm/auth";
import type { Logger } from "@rdm/observability";
import { WITHOUT_CHANNELZ } from "./channelz.js";
import { ClientStreamCancelled, InvalidArgument, statusTrailer, toStatus, Unauthenticated } from "./errors.js";
import { HealthService } from "./health.js";
import {
  type CallContext,
  type CallHandler,
  type CallRequest,
  type CallResponse,
  composeInterceptors,
  EncodedResponse,
  firstMetadataValue,
  type Interceptor,
  type InterceptorContext,
} from "./interceptor.js";
import { authenticateCallers, authorizeRoles } from "./interceptors/auth.js";
import { logCalls, measureCalls, traceCalls } from "./interceptors/observe.js";
import { servingGate } from "./interceptors/serving.js";
import { validateRequests } from "./interceptors/validate.js";
import { namingTheLargestField } from "./largest-field.js";
import { addLazyReflection } from "./reflection.js";
import { methodPath, rawServiceDefinition } from "./service-definition.js";

export type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
) => Promise<MessageInitShape<O> | EncodedResponse<O>>;

/**
 * A client-streaming handler: `requests` yields each message, decoded and validated, in order
 * (an invalid one throws INVALID_ARGUMENT from the iterator); it ends when the client half-closes.
 */
export type ClientStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  ctx: CallContext,
) => Promise<MessageInitShape<O> | EncodedResponse<O>>;

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
  /**
   * The service's own interceptors, run after the standard ones (so they see an authenticated,
   * authorized, valid request) and before the handler, in array order.
   */
  interceptors?: readonly Interceptor[];
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
    /**
     * Sets the grpc.health.v1 status of one service (full name) or, without one, of the server
     * (""). While a service, or the server, is NOT_SERVING, its calls are refused UNAVAILABLE,
     * and those in flight when it becomes so are answered UNAVAILABLE at once (see servingGate).
     */
    setServing(service: string | undefined, serving: boolean): void;
  };
  /**
   * Reports NOT_SERVING to health watchers and ends their streams, stops accepting calls, lets
   * in-flight calls finish (up to shutdownGraceMs, then cancels them) and closes.
   */
  shutdown(): Promise<void>;
}

type Outcome = { ok: true; response: Buffer } | { ok: false; code: GrpcStatus; message: string; trailer: Metadata };

type AnyCall = ServerUnaryCall<Buffer, Buffer> | ServerReadableStream<Buffer, Buffer>;

/** The interceptors' context of one call: its request id (sent or new), logger, roles and cancellation. */
function contextOf(call: AnyCall, method: DescMethod, allowed: readonly Role[], logger: Logger): InterceptorContext {
  const requestId = firstMetadataValue(call.metadata, "x-request-id") ?? randomUUID();
  const controller = new AbortController();
  call.on("cancelled", () => controller.abort(new Error("call cancelled by the client")));
  return {
    principal: undefined,
    roles: allowed,
    logger: logger.child({ rpc: methodPath(method), request_id: requestId }),
    metadata: call.metadata,
    traceparent: undefined,
    requestId,
    signal: controller.signal,
    method,
  };
}

/** Runs the chain and turns its response or what it threw into what goes on the wire; never rejects. */
async function respond(serve: CallHandler, request: CallRequest, ctx: InterceptorContext): Promise<Outcome> {
  let response: CallResponse;
  try {
    response = await serve(request, ctx);
  } catch (error) {
    return failure(error); // logged by the log interceptor when it is an internal error
  }
  try {
    if (response instanceof EncodedResponse) {
      if (response.schema.typeName !== ctx.method.output.typeName)
        throw new Error(`encoded ${response.schema.typeName} is not a ${ctx.method.output.typeName}`);
      const { bytes } = response;
      return { ok: true, response: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
    }
    const output = isMessage(response, ctx.method.output) ? response : create(ctx.method.output, response);
    return { ok: true, response: Buffer.from(toBinary(ctx.method.output, output)) };
  } catch (error) {
    ctx.logger.error({ err: error }, "gRPC response could not be encoded");
    return failure(error);
  }
}

/** The grpc-js implementation of one method: decode, run the interceptor chain and handler, answer. */
function methodImplementation(
  method: DescMethod,
  serve: CallHandler,
  allowed: readonly Role[],
  logger: Logger,
): UntypedServiceImplementation[string] {
  const answer = (request: CallRequest, ctx: InterceptorContext, callback: sendUnaryData<Buffer>) => {
    void respond(serve, request, ctx)
      .catch((error: unknown): Outcome => {
        // Only reachable if mapping the error itself failed: still answer, never crash.
        logger.error({ err: error, rpc: methodPath(method) }, "gRPC call pipeline failed");
        return { ok: false, code: GrpcStatus.INTERNAL, message: "internal error", trailer: new Metadata() };
      })
      .then((outcome) => {
        if (outcome.ok) callback(null, outcome.response);
        else callback({ code: outcome.code, details: outcome.message, metadata: outcome.trailer });
      });
  };
  if (method.methodKind === "client_streaming") {
    return (call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) =>
      answer(
        { kind: "client_streaming", messages: decodeStream(method.input, call) },
        contextOf(call, method, allowed, logger),
        callback,
      );
  }
  return (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) =>
    answer(lazilyDecoded(method.input, call.request), contextOf(call, method, allowed, logger), callback);
}

/** Every method of one registered service behind the standard interceptors, then the service's own. */
function serviceImplementation(
  { service, handlers, roles, interceptors }: ServiceRegistration,
  standard: readonly Interceptor[],
  logger: Logger,
): UntypedServiceImplementation {
  const implementation: UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = handlers[method.localName] as unknown as HandlerOfAnyKind;
    const serve = composeInterceptors([...standard, ...(interceptors ?? [])], (request, ctx) => {
      // The authenticate interceptor sets the principal; without one no handler runs.
      if (!ctx.principal) throw new Unauthenticated("unauthenticated: no caller was authenticated", "missing_token");
      const callContext = ctx as CallContext;
      return request.kind === "unary"
        ? namingTheLargestField(method.input, request.message, () => handler(request.message, callContext))
        : handler(request.messages, callContext);
    });
    const allowed = roles[method.localName] as readonly Role[];
    implementation[method.localName] = methodImplementation(method, serve, allowed, logger);
  }
  return implementation;
}

/** Binding and the graceful shutdown (health watchers first, then in-flight calls up to the grace). */
function serverLifecycle(
  server: Server,
  health: HealthService,
  options: Pick<GrpcServerOptions<GenServiceMethods[]>, "logger" | "credentials" | "shutdownGraceMs">,
): Omit<GrpcServer, "health"> {
  const { logger } = options;
  const graceMs = options.shutdownGraceMs ?? 10_000;
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
        timer = setTimeout(() => resolve(false), graceMs);
      });
      const drained = await graceful;
      clearTimeout(timer);
      if (!drained) {
        logger.warn({ graceMs }, "gRPC calls still running after the grace period; cancelling them");
        server.forceShutdown();
      }
      listening = false;
      logger.info("gRPC server stopped");
    },
  };
}

/**
 * A gRPC server for protobuf-es services. Every call passes the standard interceptors, in this
 * order: trace, log, metrics, authenticate, authorize, validate, and refusal (UNAVAILABLE) while
 * health says the service is NOT_SERVING; then the service's own, then its handler. What is
 * thrown becomes a gRPC status with google.rpc details. Health and reflection are served without
 * a token.
 */
export function createGrpcServer<T extends GenServiceMethods[]>(options: GrpcServerOptions<T>): GrpcServer {
  const { logger } = options;
  const registrations = options.services as unknown as ServiceRegistration[];
  const server = new Server(WITHOUT_CHANNELZ);
  // Health: every registered service and the server as a whole ("") start SERVING.
  const health = new HealthService(
    Object.fromEntries(["", ...registrations.map((r) => r.service.typeName)].map((n) => [n, true])),
  );
  const gate = servingGate(health);
  const standard: Interceptor[] = [
    traceCalls(),
    logCalls(logger),
    measureCalls(),
    authenticateCallers(options.verifier),
    authorizeRoles(),
    validateRequests(),
    gate.interceptor,
  ];

  for (const registration of registrations) checkRegistration(registration);
  for (const registration of registrations) {
    server.addService(
      rawServiceDefinition(registration.service),
      serviceImplementation(registration, standard, logger),
    );
  }

  health.addToServer(server);

  if (options.reflection) {
    addLazyReflection(server, {
      imagePath: options.reflection.imagePath,
      services: registrations.map((r) => r.service.typeName),
      logger,
    });
  }

  return {
    ...serverLifecycle(server, health, options),
    health: {
      setServing(service, serving) {
        health.setServing(service ?? "", serving);
        if (!serving) gate.failCallsInFlight(service || undefined);
      },
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

/** Every handler kind, as the chain's last step calls it. */
type HandlerOfAnyKind = (
  request: MessageShape<DescMessage> | AsyncIterable<MessageShape<DescMessage>>,
  ctx: CallContext,
) => Promise<CallResponse>;

function failure(error: unknown): Outcome {
  const mapped = toStatus(error);
  return { ok: false, code: mapped.code, message: mapped.message, trailer: statusTrailer(mapped) };
}

function decode<Desc extends DescMessage>(schema: Desc, bytes: Buffer): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes);
  } catch (error) {
    throw new InvalidArgument([], `request is not a valid ${schema.typeName}: ${(error as Error).message}`);
  }
}

/** A unary request decoded on first read of `message`, so a decoding error comes after authentication. */
function lazilyDecoded(schema: DescMessage, bytes: Buffer): CallRequest {
  let message: MessageShape<DescMessage> | undefined;
  return {
    kind: "unary",
    get message() {
      message ??= decode(schema, bytes);
      return message;
    },
  };
}

/**
 * The request stream's messages; it ends when the client half-closes. A client that resets the
 * stream or drops the connection before that ends grpc-js's stream too, as if it had half-closed,
 * and marks the call cancelled in the same turn: that end is an error here (CANCELLED), so that
 * no handler answers, or records, what a part of the stream would say.
 */
async function* decodeStream<Desc extends DescMessage>(
  schema: Desc,
  call: ServerReadableStream<Buffer, Buffer>,
): AsyncGenerator<MessageShape<Desc>> {
  for await (const bytes of call as AsyncIterable<Buffer>) yield decode(schema, bytes);
  if (call.cancelled) throw new ClientStreamCancelled();
}
