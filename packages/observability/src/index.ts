export type { ObservableResult } from "@opentelemetry/api";
export { createLogger, type Logger } from "./logger.js";
export { meter, startTelemetry, type Telemetry, type TelemetryOptions } from "./sdk.js";
export { currentTraceparent, inSpan, SpanKind, tracer, withTraceparent } from "./tracing.js";
