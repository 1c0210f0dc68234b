// Starts the whole system on embedded defaults: PostgreSQL (data under .data/postgres, kept across
// restarts), librdkafka's mock Kafka cluster, the four gRPC services and the gateway, each as a
// child process with prefixed, readable logs; then registers the default environments and starts
// one reference executor. Ctrl-C stops everything in reverse order.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { mintDevToken, type Role } from "@rdm/auth";
import { ensureDatabase, howItEnded, startEmbeddedPostgresProcess, startMockKafka } from "@rdm/embedded";
import { EVENT_SOURCES, eventsTopic } from "@rdm/messaging";
import { executorArguments, registerDefaultEnvironments } from "./deployment-defaults.js";
import { orphansOf } from "./earlier-stack.js";

const root = path.resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const dataDir = path.resolve(process.env.RDM_DATA_DIR ?? path.join(root, ".data"));
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);

const components = [
  {
    name: "release",
    kind: "grpc",
    variable: "RELEASE_GRPC_PORT",
    port: env("RELEASE_GRPC_PORT", 50051),
    metrics: env("RELEASE_METRICS_PORT", 9464),
  },
  {
    name: "change",
    kind: "grpc",
    variable: "CHANGE_GRPC_PORT",
    port: env("CHANGE_GRPC_PORT", 50052),
    metrics: env("CHANGE_METRICS_PORT", 9465),
  },
  {
    name: "configuration",
    kind: "grpc",
    variable: "CONFIGURATION_GRPC_PORT",
    port: env("CONFIGURATION_GRPC_PORT", 50053),
    metrics: env("CONFIGURATION_METRICS_PORT", 9466),
  },
  {
    name: "deployment",
    kind: "grpc",
    variable: "DEPLOYMENT_GRPC_PORT",
    port: env("DEPLOYMENT_GRPC_PORT", 50054),
    metrics: env("DEPLOYMENT_METRICS_PORT", 9467),
  },
  {
    name: "gateway",
    kind: "http",
    variable: "GATEWAY_HTTP_PORT",
    port: env("GATEWAY_HTTP_PORT", 8080),
    metrics: env("GATEWAY_METRICS_PORT", 9468),
  },
] as const;
const postgresPort = { name: "postgres", variable: "RDM_POSTGRES_PORT", port: env("RDM_POSTGRES_PORT", 54329) };

const COLORS = [36, 35, 33, 32, 34, 31];
const LEVELS: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO ", 40: "WARN ", 50: "ERROR", 60: "FATAL" };
const width = Math.max(...components.map((c) => c.name.length), "executor".length, "postgres".length);
const label = (name: string, i: number) => `\x1b[${COLORS[i % COLORS.length]}m${name.padEnd(width)}\x1b[0m |`;

/** One readable line from a pino JSON line (anything else is printed as it came). */
function pretty(line: string): string {
  try {
    const { level, time, msg, component: _c, pid: _p, hostname: _h, ...rest } = JSON.parse(line);
    const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
    return `${new Date(time).toISOString().slice(11, 23)} ${LEVELS[level] ?? level ?? "INFO "} ${msg ?? ""}${extra}`;
  } catch {
    return line;
  }
}

/**
 * Resolves once a gRPC port accepts connections or the gateway reports ready. Gives up after
 * three minutes: a component that fails exits (and stops the stack) long before; one that is
 * merely slow (a first start on a busy machine) gets the time.
 */
async function waitUntilServing({ name, kind, port }: (typeof components)[number]): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const serving =
      kind === "http"
        ? await fetch(`http://127.0.0.1:${port}/readyz`).then(
            (r) => r.ok,
            () => false,
          )
        : await new Promise<boolean>((resolve) => {
            const socket = connect(port, "127.0.0.1", () => {
              socket.end();
              resolve(true);
            });
            socket.once("error", () => resolve(false));
          });
    if (serving) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${name} not serving on port ${port} after 3 minutes`);
}

/** The ports of `wanted` that cannot be bound on 127.0.0.1 right now. */
async function portsInUse<T extends { port: number }>(wanted: readonly T[]): Promise<T[]> {
  const busy = await Promise.all(
    wanted.map(
      ({ port }) =>
        new Promise<boolean>((resolve) => {
          const server = createServer();
          server.once("error", () => resolve(true));
          server.listen(port, "127.0.0.1", () => server.close(() => resolve(false)));
        }),
    ),
  );
  return wanted.filter((_, i) => busy[i]);
}

function devSecret(): string {
  const file = path.join(dataDir, "dev-jwt-secret");
  if (!existsSync(file)) writeFileSync(file, randomBytes(32).toString("hex"), { mode: 0o600 });
  return readFileSync(file, "utf8").trim();
}

/** How long a start waits for an earlier stack's processes to stop: beyond their own 30 s bound. */
const EARLIER_STACK_WAIT_MS = 45_000;

/**
 * Before anything starts: a port taken by another process stops the start with a clear word. When
 * processes of an earlier stack from this folder are still stopping (its supervisor was killed),
 * it first waits for the ports to be freed.
 */
async function refuseTakenPorts(): Promise<void> {
  const metricsPorts = components.map((c) => ({
    name: `${c.name} metrics`,
    variable: `${c.name.toUpperCase()}_METRICS_PORT`,
    port: c.metrics,
  }));
  const wanted = [postgresPort, ...components, ...metricsPorts];
  let taken = await portsInUse(wanted);
  const earlier = taken.length ? orphansOf(root) : [];
  if (earlier.length) {
    say(`waiting for an earlier stack's processes from this folder to stop (pids ${earlier.join(", ")})`);
    // Until the ports are free, not until those processes are gone: what matters is the ports.
    const deadline = Date.now() + EARLIER_STACK_WAIT_MS;
    while (taken.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      taken = await portsInUse(wanted);
    }
  }
  if (!taken.length) return;
  for (const { name, port, variable } of taken) {
    console.error(`rdm: port ${port} (${name}) is already in use on 127.0.0.1; set ${variable} to use another port`);
  }
  console.error("rdm: nothing was started");
  process.exit(1);
}

const say = (line: string) => console.log(`${label("rdm", 5)} ${line}`);

const startPostgres = () =>
  startEmbeddedPostgresProcess({ dataDir: path.join(dataDir, "postgres"), port: postgresPort.port });

async function startInfrastructure() {
  say("starting PostgreSQL");
  const postgres = await startPostgres();
  // As root, in a folder the postgres user cannot enter, the data lives elsewhere (see @rdm/embedded).
  say(`PostgreSQL data in ${postgres.dataDir}`);
  say("starting the Kafka-protocol broker (librdkafka mock cluster, in memory)");
  const kafka = await startMockKafka({
    topics: EVENT_SOURCES.map((s) => ({
      name: eventsTopic(s),
      partitions: 4,
    })),
  });
  return { postgres, kafka };
}

type Infrastructure = Awaited<ReturnType<typeof startInfrastructure>>;

/** A component that ends more often than this within RESTART_WINDOW_MS stops the stack. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 120_000;

/** Called at each end of one component: whether it may be started again (see MAX_RESTARTS). */
function restartBudget(): () => boolean {
  const ends: number[] = [];
  return () => {
    const now = Date.now();
    while (ends.length && now - (ends[0] as number) > RESTART_WINDOW_MS) ends.shift();
    ends.push(now);
    return ends.length <= MAX_RESTARTS;
  };
}

/**
 * Keeps embedded PostgreSQL running: when it ends by itself (killed, out of memory), it is
 * started again on the same data and port; the services answer UNAVAILABLE meanwhile and
 * reconnect. Returns what the stop waits on: the restart in progress, if any.
 */
function keepPostgres(infrastructure: Infrastructure, stopping: () => boolean, stop: (code: number) => void) {
  let restarting: Promise<unknown> = Promise.resolve();
  const mayRestart = restartBudget();
  const restart = async (how: string) => {
    say(`PostgreSQL ended by itself (${how}); starting it again on the same data`);
    for (let attempt = 1; !stopping(); attempt++) {
      try {
        infrastructure.postgres = await startPostgres();
        say("PostgreSQL is back");
        return watch();
      } catch (error) {
        // Its old processes may hold the data folder for a moment after the postmaster died.
        say(`PostgreSQL did not start (attempt ${attempt} of 5): ${(error as Error).message.split("\n")[0]}`);
        if (attempt === 5) return stop(1);
        await new Promise((resolve) => setTimeout(resolve, 1000 * attempt));
      }
    }
  };
  const watch = () =>
    void infrastructure.postgres.exited.then((how) => {
      if (stopping()) return;
      if (mayRestart()) restarting = restart(how);
      else {
        say(`PostgreSQL ended ${MAX_RESTARTS + 1} times within two minutes (last: ${how}); stopping the stack`);
        stop(1);
      }
    });
  watch();
  return () => restarting;
}

/**
 * The children of the stack, each one's logs prefixed. A child that exits by itself is started
 * again after a second, and PostgreSQL too (keepPostgres), as a process supervisor would; one
 * that keeps exiting (MAX_RESTARTS) stops the whole stack: children in reverse order, then the
 * broker and PostgreSQL. The broker keeps its topics in memory only: if it ends, the stack stops
 * rather than carry on with events lost.
 */
function supervisor(infrastructure: Infrastructure) {
  const children: { name: string; child: ChildProcess }[] = [];
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say("stopping…");
    await Promise.all(
      children.reverse().map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
            setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
          }),
      ),
    );
    await infrastructure.kafka.stop();
    await postgresRestarted();
    await infrastructure.postgres.stop();
    say("stopped");
    process.exit(code);
  };
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  const postgresRestarted = keepPostgres(infrastructure, () => stopping, stop);
  void infrastructure.kafka.exited.then((how) => {
    if (stopping) return;
    say(`the Kafka-protocol broker ended by itself (${how}); its topics were in memory, so the stack stops`);
    void stop(1);
  });

  const supervise = (name: string, i: number, args: string[], childEnv: Record<string, string>) => {
    const mayRestart = restartBudget();
    const start = (): ChildProcess => {
      const child = spawn(process.execPath, args, {
        env: { ...process.env, ...childEnv },
        // The IPC channel is the child's lifeline: it closes when this supervisor dies, however it
        // dies (kill -9 included), and the child then shuts down (see runMain in @rdm/runtime).
        stdio: ["ignore", "pipe", "pipe", "ipc"],
      });
      for (const stream of [child.stdout, child.stderr]) {
        if (!stream) continue;
        createInterface({ input: stream }).on("line", (line) => console.log(`${label(name, i)} ${pretty(line)}`));
      }
      child.once("exit", (code, signal) => {
        if (stopping) return;
        if (!mayRestart()) {
          say(
            `${name} exited ${MAX_RESTARTS + 1} times within two minutes (last: ${howItEnded(code, signal)}); stopping the stack`,
          );
          return void stop(1);
        }
        say(`${name} exited (${howItEnded(code, signal)}); starting it again`);
        setTimeout(() => {
          if (!stopping) entry.child = start();
        }, 1000);
      });
      return child;
    };
    const entry = { name, child: start() };
    children.push(entry);
  };
  return supervise;
}

type Supervise = ReturnType<typeof supervisor>;

/**
 * Each service in its own database, all on the one broker, signing tokens with the dev secret.
 * With RDM_FRESH_VIEWS=1 the gateway starts on an empty database: the broker is new at every
 * start and the relays publish every event again, so it builds every view anew from them.
 */
async function startServices({ postgres, kafka }: Infrastructure, supervise: Supervise, secret: string) {
  const freshViews = process.env.RDM_FRESH_VIEWS === "1";
  for (const [i, component] of components.entries()) {
    const databaseUrl = await ensureDatabase(postgres.adminUrl, `rdm_${component.name}`, {
      fresh: freshViews && component.name === "gateway",
    });
    supervise(
      component.name,
      i,
      [
        // No --enable-source-maps: it reads and keeps every loaded module's source map (about
        // 3 MB per process); `NODE_OPTIONS=--enable-source-maps ./rdm up` gives TypeScript lines.
        // Startup (migrations, group joins) grows V8's young generation to its 2 x 16 MB default
        // and an idle process keeps it for minutes. 2 x 2 MB: an idle service ~4 MB smaller than
        // at 2 x 4 MB, at no measured cost (platform bench at 32 in flight, CPU per call equal).
        "--max-semi-space-size=2",
        path.join(root, "services", component.name, "dist/main.js"),
      ],
      {
        DATABASE_URL: databaseUrl,
        KAFKA_BROKERS: kafka.bootstrapServers.join(","),
        AUTH_JWT_SECRET: secret,
        ...(component.kind === "grpc" ? { GRPC_PORT: String(component.port) } : { HTTP_PORT: String(component.port) }),
        METRICS_PORT: String(component.metrics),
        // Links in notification payloads point at this gateway (read by the release process's notifier).
        NOTIFICATION_LINK_BASE_URL: `http://127.0.0.1:${components[4].port}`,
      },
    );
  }
  await Promise.all(components.map(waitUntilServing));
}

function printSummary({ postgres, kafka }: Infrastructure, token: string) {
  say("up:");
  say(`  PostgreSQL      ${postgres.adminUrl.replace(/:[^:@/]*@/, ":***@")}`);
  say(`  Kafka           ${kafka.bootstrapServers.join(",")}`);
  for (const c of components)
    say(
      `  ${c.name.padEnd(15)} ${c.kind === "grpc" ? "grpc" : "http"}://127.0.0.1:${c.port}  metrics http://127.0.0.1:${c.metrics}/metrics`,
    );
  say(`  executor        ${executorIds().join(", ")}, every environment: echoes what it would deploy per target`);
  say(`  OpenAPI         http://127.0.0.1:${components[4].port}/docs (document: /docs/json)`);
  say(`  dev token (admin, 12h, local use only): ${token}`);
  say("  more tokens: ./rdm token <subject> <role[,role]> [--groups cab,ecab]");
  say("Ctrl-C stops everything.");
}

/** `dev-executor`, then `dev-executor-2`… : RDM_EXECUTORS of them (default 1). */
function executorIds(): string[] {
  const count = Number(process.env.RDM_EXECUTORS ?? 1);
  if (!(Number.isInteger(count) && count >= 1)) throw new Error("RDM_EXECUTORS must be a whole number >= 1");
  return Array.from({ length: count }, (_, i) => (i ? `dev-executor-${i + 1}` : "dev-executor"));
}

async function main() {
  await refuseTakenPorts();
  mkdirSync(dataDir, { recursive: true });
  const infrastructure = await startInfrastructure();
  const secret = devSecret();
  const supervise = supervisor(infrastructure);
  await startServices(infrastructure, supervise, secret);

  const mint = (subject: string, roles: Role[], groups: string[] = []) =>
    mintDevToken({ subject, roles, groups, secret, issuer: "rdm", audience: "rdm", expiresIn: "12h" });
  const token = await mint("dev-admin", ["admin"], ["cab", "ecab"]);
  const deploymentAddress = `127.0.0.1:${components[3].port}`;
  await registerDefaultEnvironments(
    { deployment: deploymentAddress, configuration: `127.0.0.1:${components[2].port}` },
    token,
  );
  say("environments dev → test → staging → production registered, their hosts in the CMDB");
  const executorToken = await mint("dev-executor", ["executor"]);
  for (const [i, id] of executorIds().entries()) {
    supervise(
      i ? `executor-${i + 1}` : "executor",
      components.length,
      ["--max-semi-space-size=2", ...executorArguments(root, deploymentAddress, id)],
      { RDM_EXECUTOR_TOKEN: executorToken },
    );
  }
  printSummary(infrastructure, token);
}

main().catch((error: Error) => {
  // What went wrong, without a stack trace; children and launchers end with this process.
  console.error(`rdm: ${error.message}`);
  process.exit(1);
});
