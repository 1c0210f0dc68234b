import { metrics } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { NodeSDK } from "@opentelemetry/sdk-node";
import type { SpanProcessor } from "@opentelemetry/sdk-trace";
import { ATTR_SERVICE_NAME } from "@opentelemetry/semantic-conventions";

export interface TelemetryOptions {
  serviceName: string;
  /** OTLP/HTTP base URL (e.g. http://127.0.0.1:4318). Unset: no export, but context still propagates. */
  otlpEndpoint?: string | undefined;
  /** Extra span processors, e.g. an in-memory exporter in tests. */
  spanProcessors?: SpanProcessor[];
}

export interface Telemetry {
  shutdown(): Promise<void>;
}

/**
 * Starts OpenTelemetry for a process. W3C trace context propagation is always on, so
 * traceparent flows through gRPC, the event store and Kafka even when nothing is exported.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const processors = [...(options.spanProcessors ?? [])];
  if (!options.otlpEndpoint) {
    // Without an endpoint the SDK would still build OTLP log/metric exporters from its env defaults.
    process.env.OTEL_LOGS_EXPORTER ??= "none";
    process.env.OTEL_METRICS_EXPORTER ??= "none";
    process.env.OTEL_TRACES_EXPORTER ??= "none";
  }
  const sdk = new NodeSDK({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName }),
    textMapPropagator: new W3CTraceContextPropagator(),
    ...(options.otlpEndpoint
      ? {
          traceExporter: new OTLPTraceExporter({ url: `${options.otlpEndpoint}/v1/traces` }),
          metricReaders: [
            new PeriodicExportingMetricReader({
              exporter: new OTLPMetricExporter({ url: `${options.otlpEndpoint}/v1/metrics` }),
            }),
          ],
        }
      : {}),
    spanProcessors: processors,
    instrumentations: [],
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}

export const meter = (name = "rdm") => metrics.getMeter(name);
