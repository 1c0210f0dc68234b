import { performance } from "node:perf_hooks";
import { status as GrpcStatus } from "@grpc/grpc-js";
import { type Histogram, SpanStatusCode } from "@opentelemetry/api";
import { currentTraceparent, type Logger, meter, SpanKind, tracer, withTraceparent } from "@rdm/observability";
import { toStatus } from "../errors.js";
import { firstMetadataValue, type Interceptor } from "../interceptor.js";
import { methodPath } from "../service-definition.js";

/** Codes that mean the server failed (the others are the caller's doing): only these mark the span as an error. */
const SERVER_FAULTS = new Set([
  GrpcStatus.UNKNOWN,
  GrpcStatus.DEADLINE_EXCEEDED,
  GrpcStatus.UNIMPLEMENTED,
  GrpcStatus.INTERNAL,
  GrpcStatus.UNAVAILABLE,
  GrpcStatus.DATA_LOSS,
]);

/**
 * Runs the call in a SERVER span named `package.Service/Method`, child of the caller's
 * `traceparent` metadata when it sent one, and puts the span's traceparent in the context
 * (events store it, so consumers continue the trace).
 */
export function traceCalls(): Interceptor {
  return (next) => (request, ctx) =>
    withTraceparent(firstMetadataValue(ctx.metadata, "traceparent"), () =>
      tracer().startActiveSpan(
        methodPath(ctx.method).slice(1),
        {
          kind: SpanKind.SERVER,
          attributes: {
            "rpc.system": "grpc",
            "rpc.service": ctx.method.parent.typeName,
            "rpc.method": ctx.method.name,
          },
        },
        async (span) => {
          ctx.traceparent = currentTraceparent();
          try {
            const response = await next(request, ctx);
            span.setAttribute("rpc.grpc.status_code", GrpcStatus.OK);
            return response;
          } catch (error) {
            const { code, message } = toStatus(error);
            span.setAttribute("rpc.grpc.status_code", code);
            if (SERVER_FAULTS.has(code)) {
              if (error instanceof Error) span.recordException(error);
              span.setStatus({ code: SpanStatusCode.ERROR, message });
            }
            throw error;
          } finally {
            if (ctx.principal) span.setAttribute("enduser.id", ctx.principal.subject);
            span.end();
          }
        },
      ),
    );
}

/**
 * One log line per call (`rpc`, `code`, `duration_ms`, `subject`, `request_id`), at info unless
 * the handler lowered `ctx.callLogLevel`; an error that becomes INTERNAL is logged here, once, with
 * its real message (the caller sees a generic one).
 */
export function logCalls(logger: Logger): Interceptor {
  return (next) => async (request, ctx) => {
    const started = performance.now();
    const rpc = methodPath(ctx.method);
    const line = (code: GrpcStatus) => ({
      rpc,
      code: GrpcStatus[code],
      duration_ms: Math.round((performance.now() - started) * 1000) / 1000,
      subject: ctx.principal?.subject,
      request_id: ctx.requestId,
    });
    try {
      const response = await next(request, ctx);
      logger[ctx.callLogLevel ?? "info"](line(GrpcStatus.OK), "gRPC call");
      return response;
    } catch (error) {
      const mapped = toStatus(error);
      if (mapped.internal) ctx.logger.error({ err: error, subject: ctx.principal?.subject }, "gRPC handler failed");
      logger.info(line(mapped.code), "gRPC call");
      throw error;
    }
  };
}

/**
 * Records each call's duration in the `rpc.server.duration` histogram (ms) by service, method
 * and status code.
 */
export function measureCalls(): Interceptor {
  let latency: Histogram | undefined;
  return (next) => async (request, ctx) => {
    const started = performance.now();
    let code: GrpcStatus = GrpcStatus.OK;
    try {
      return await next(request, ctx);
    } catch (error) {
      code = toStatus(error).code;
      throw error;
    } finally {
      // Created on first use: the process's meter provider may be registered after the server is built.
      latency ??= meter("@rdm/grpc").createHistogram("rpc.server.duration", {
        unit: "ms",
        description: "Duration of gRPC calls, by service, method and status code",
      });
      latency.record(performance.now() - started, {
        "rpc.service": ctx.method.parent.typeName,
        "rpc.method": ctx.method.name,
        "rpc.grpc.status_code": code,
      });
    }
  };
}
