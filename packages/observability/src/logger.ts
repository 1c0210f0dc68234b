import { trace } from "@opentelemetry/api";
import { type Logger, pino } from "pino";

export type { Logger } from "pino";

/**
 * JSON logger for one component. Every line written inside an active span carries its
 * trace_id and span_id, so logs join traces without extra work at call sites.
 */
export function createLogger(component: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { component },
    mixin() {
      const span = trace.getActiveSpan();
      if (!span) return {};
      const { traceId, spanId } = span.spanContext();
      return { trace_id: traceId, span_id: spanId };
    },
  });
}
