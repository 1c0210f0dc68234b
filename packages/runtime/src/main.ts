import { loadConfig, telemetryEnv } from "@rdm/config";
import { createLogger, startTelemetry, type Telemetry } from "@rdm/observability";
import { endWithSupervisor } from "./lifeline.js";

/** Longest a process stop may take (server grace, relay batch, consumers) before it exits anyway. */
const STOP_TIMEOUT_MS = 30_000;

export interface MainOptions {
  /** Where `GET /metrics` is served unless METRICS_PORT says otherwise. */
  defaultMetricsPort: number;
}

/**
 * Process entry point: telemetry (traces always recorded, `/metrics` on METRICS_HOST:METRICS_PORT,
 * OTLP export when configured), start, and a clean stop on SIGINT/SIGTERM.
 */
export async function runMain(
  name: string,
  start: () => Promise<{ stop(): Promise<void> }>,
  options: MainOptions,
): Promise<void> {
  const logger = createLogger(name);
  // Started by `./rdm up`'s supervisor: a service without its supervisor must not linger.
  // Before it has started there is nothing to stop cleanly.
  let stopOnSupervisorLoss: () => void = () => process.exit(1);
  endWithSupervisor(() => stopOnSupervisorLoss(), STOP_TIMEOUT_MS + 5_000);
  let telemetry: Telemetry;
  try {
    const config = loadConfig(telemetryEnv(options.defaultMetricsPort));
    telemetry = await startTelemetry({
      serviceName: `rdm-${name}`,
      otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
      metrics: { host: config.METRICS_HOST, port: config.METRICS_PORT },
    }).catch((error: Error) => {
      throw new Error(`${error.message} (METRICS_HOST / METRICS_PORT choose where /metrics is served)`, {
        cause: error,
      });
    });
  } catch (error) {
    logger.fatal({ err: error }, `${name} failed to start: ${(error as Error).message}`);
    process.exit(1);
  }
  logger.info({ port: telemetry.metricsPort }, "metrics served at /metrics");
  let running: { stop(): Promise<void> };
  try {
    running = await start();
  } catch (error) {
    logger.fatal({ err: error }, `${name} failed to start: ${(error as Error).message}`);
    await telemetry.shutdown();
    process.exit(1);
  }
  const shutdown = async (signal: string) => {
    logger.info({ signal }, "stopping");
    // A stop that cannot finish (its database and broker went away with the supervisor) must
    // not keep the process: what could be flushed has been by then.
    setTimeout(() => {
      logger.error({ signal, stopTimeoutMs: STOP_TIMEOUT_MS }, "stop did not finish in time; exiting");
      process.exit(1);
    }, STOP_TIMEOUT_MS).unref();
    try {
      await running.stop();
    } finally {
      await telemetry.shutdown();
      process.exit(0);
    }
  };
  process.once("SIGINT", () => void shutdown("SIGINT"));
  process.once("SIGTERM", () => void shutdown("SIGTERM"));
  stopOnSupervisorLoss = () => void shutdown("supervisor gone");
}
