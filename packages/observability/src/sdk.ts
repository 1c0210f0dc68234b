import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { context, metrics, propagation, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, type MetricReader, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { BatchSpanProcessor, type SpanProcessor, TracerProvider } from "@opentelemetry/sdk-trace";

export interface TelemetryOptions {
  serviceName: string;
  /** OTLP/HTTP base URL (e.g. http://127.0.0.1:4318). Unset: nothing is pushed, spans are still recorded. */
  otlpEndpoint?: string | undefined;
  /** Extra span processors, e.g. an in-memory exporter in tests. */
  spanProcessors?: SpanProcessor[];
  /** Serve `GET /metrics` (Prometheus text format) here; port 0 picks a free one. Unset: no endpoint. */
  metrics?: { host: string; port: number };
}

export interface Telemetry {
  /** The port `/metrics` is served on (the bound one when asked for port 0), if it is. */
  readonly metricsPort: number | undefined;
  /** Flushes and stops exporters, closes the metrics endpoint and unregisters the global providers. */
  shutdown(): Promise<void>;
}

/**
 * Starts OpenTelemetry for a process, assembled from the few SDK parts it needs rather than the
 * NodeSDK, which loads every exporter, resource detector and instrumentation hook it knows of.
 *
 * A tracer provider is always registered, so every span is recording and has a trace id even
 * with no exporter: the gRPC server span's traceparent is what each event stores, and consumers
 * continue that trace. OTLP exporters are loaded only when an endpoint is configured.
 */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const resource = resourceFromAttributes({ "service.name": options.serviceName });
  const spanProcessors = [...(options.spanProcessors ?? [])];
  const readers: MetricReader[] = [];
  if (options.otlpEndpoint) {
    const [{ OTLPTraceExporter }, { OTLPMetricExporter }] = await Promise.all([
      import("@opentelemetry/exporter-trace-otlp-http"),
      import("@opentelemetry/exporter-metrics-otlp-http"),
    ]);
    spanProcessors.push(
      new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${options.otlpEndpoint}/v1/traces` }) }),
    );
    readers.push(
      new PeriodicExportingMetricReader({
        exporter: new OTLPMetricExporter({ url: `${options.otlpEndpoint}/v1/metrics` }),
      }),
    );
  }
  let prometheus: PrometheusExporter | undefined;
  if (options.metrics) {
    // Served by our own listener (below), so port 0 works and the bound port is known.
    prometheus = new PrometheusExporter({ preventServerStart: true });
    readers.push(prometheus);
  }

  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  const tracerProvider = new TracerProvider({ resource, spanProcessors });
  trace.setGlobalTracerProvider(tracerProvider);
  const meterProvider = readers.length > 0 ? new MeterProvider({ resource, readers }) : undefined;
  if (meterProvider) metrics.setGlobalMeterProvider(meterProvider);

  let server: Server | undefined;
  if (prometheus && options.metrics) {
    server = await serveMetrics(prometheus, options.metrics.host, options.metrics.port);
  }
  const metricsPort = server ? (server.address() as AddressInfo).port : undefined;

  return {
    metricsPort,
    async shutdown() {
      if (server) {
        const closing = server;
        const closed = new Promise<void>((resolve) => closing.close(() => resolve()));
        closing.closeAllConnections(); // a scraper's keep-alive connection must not hold shutdown up
        await closed;
      }
      await Promise.all([tracerProvider.shutdown(), meterProvider?.shutdown()]);
      trace.disable();
      metrics.disable();
      propagation.disable();
      context.disable();
    },
  };
}

/** `GET /metrics` in Prometheus text format; anything else is 404. */
async function serveMetrics(exporter: PrometheusExporter, host: string, port: number): Promise<Server> {
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://metrics").pathname;
    if (request.method === "GET" && path === "/metrics") {
      exporter.getMetricsRequestHandler(request, response);
      return;
    }
    response.statusCode = 404;
    response.end("not found: metrics are at GET /metrics\n");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(new Error(`cannot serve /metrics on ${host}:${port}: ${error.code ?? error.message}`, { cause: error })),
    );
    server.listen(port, host, () => {
      server.removeAllListeners("error");
      resolve();
    });
  });
  return server;
}

export const meter = (name = "rdm") => metrics.getMeter(name);
