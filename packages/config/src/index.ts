import { z } from "zod";

export { z };

/** Raised at start when the environment does not describe a runnable service; lists every problem at once. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

/** Parses environment variables with a zod object schema whose keys are the variable names. */
export function loadConfig<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv = process.env): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  throw new ConfigError(
    result.error.issues.map((issue) => {
      const name = issue.path.join(".");
      const value = env[name];
      return `${name}: ${issue.message}${value === undefined ? " (not set)" : ""}`;
    }),
  );
}

const csv = z
  .string()
  .transform((s) => s.split(",").map((part) => part.trim()))
  .pipe(z.array(z.string().min(1)).min(1));

export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

/** Variables every component shares: database, Kafka, auth, telemetry. */
export const sharedEnv = {
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// URL" }),
  KAFKA_BROKERS: csv,
  /**
   * Put before every topic name this component reads or writes ("staging." → staging.rdm.release.events.v1):
   * several installations (or test runs) can share one Kafka cluster without seeing each other.
   */
  KAFKA_TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, "letters, digits, '.', '_' and '-' only")
    .default(""),
  AUTH_ISSUER: z.string().min(1).default("rdm"),
  AUTH_AUDIENCE: z.string().min(1).default("rdm"),
  AUTH_JWT_SECRET: z.string().min(32, "must be at least 32 characters (HS256)").optional(),
  AUTH_PUBLIC_KEY: z.string().min(1).optional(),
  AUTH_JWKS_URL: z.url().optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
};

/**
 * Environment schema of one component: the shared variables plus its own. At least one way to
 * verify tokens must be configured, so authentication is never silently off.
 */
export function componentEnv<E extends z.ZodRawShape>(own: E) {
  return z.object({ ...sharedEnv, ...own }).refine(
    (c) => {
      const auth = c as { AUTH_JWT_SECRET?: string; AUTH_PUBLIC_KEY?: string; AUTH_JWKS_URL?: string };
      return Boolean(auth.AUTH_JWT_SECRET || auth.AUTH_PUBLIC_KEY || auth.AUTH_JWKS_URL);
    },
    {
      message: "one of AUTH_JWT_SECRET, AUTH_PUBLIC_KEY or AUTH_JWKS_URL must be set",
      path: ["AUTH_JWT_SECRET"],
    },
  );
}

/**
 * Telemetry of a process, read before anything else starts: where to push OTLP (optional) and
 * where to serve `GET /metrics` in Prometheus text format (each process has its own default port).
 */
export const telemetryEnv = (defaultMetricsPort: number) =>
  z.object({
    OTEL_EXPORTER_OTLP_ENDPOINT: sharedEnv.OTEL_EXPORTER_OTLP_ENDPOINT,
    METRICS_HOST: z.string().min(1).default("127.0.0.1"),
    METRICS_PORT: port(defaultMetricsPort),
  });

/** Environment of a gRPC service: shared variables plus where to listen. */
export const grpcServiceEnv = (defaultPort: number) =>
  componentEnv({
    GRPC_HOST: z.string().default("127.0.0.1"),
    GRPC_PORT: port(defaultPort),
    /** Under a stream of commits, least time between the starts of two relay cycles (see @rdm/relay). */
    RELAY_LINGER_MS: z.coerce.number().int().min(0).max(1000).default(50),
  });
