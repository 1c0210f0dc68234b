import { trace } from "@opentelemetry/api";
import { type Logger, pino } from "pino";

export type { Logger } from "pino";

/**
 * JSON logger for one component. Every line written inside an active span carries its
 * trace_id and span_id, so logs join traces without extra work at call sites. Lines go to
 * standard output, or to `destination` (a test reading what was logged).
 */
export function createLogger(
  component: string,
  level = process.env.LOG_LEVEL ?? "info",
  destination?: { write(line: string): void },
): Logger {
  const options = {
    level,
    base: { component },
    mixin() {
      const span = trace.getActiveSpan();
      if (!span) return {};
      const { traceId, spanId } = span.spanContext();
      return { trace_id: traceId, span_id: spanId };
    },
  };
  return destination ? pino(options, destination) : pino(options);
}
