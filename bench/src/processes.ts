// The services under test as their own processes (as `./rdm up` runs them), and the CPU time of
// every process of the run, so the load generator's CPU is not charged to the service.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { connect } from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort } from "@rdm/embedded";
import { createTestDatabase } from "@rdm/testkit";
import { allProcesses, memoryLine, type Proc, processOf, TICKS_PER_SECOND } from "./procfs.js";

const root = path.resolve(fileURLToPath(new URL("../..", import.meta.url)));

export interface ServiceProcess {
  name: string;
  pid: number;
  /** The gRPC port, or the gateway's HTTP port. */
  port: number;
  stop(): Promise<void>;
}

/** Resolves once `port` accepts connections; rejects when the child exits first. */
async function waitForPort(child: ChildProcess, name: string, port: number): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}) before serving`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, "127.0.0.1", () => {
        socket.end();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * `services/<name>/dist/main.js` in a child process with `env` (ports chosen here), its output
 * passed through (logs at LOG_LEVEL=warn). `nodeArgs` e.g. `--cpu-prof`: stop() ends it with
 * SIGTERM, so a profile is written. BENCH_NODE_ARGS (space-separated) goes before them for every
 * service, e.g. `./rdm up`'s `--max-semi-space-size=2`.
 */
export async function startServiceProcess(
  name: "release" | "change" | "configuration" | "gateway",
  env: Record<string, string>,
  nodeArgs: string[] = [],
): Promise<ServiceProcess> {
  const port = await freePort();
  const args = [...(process.env.BENCH_NODE_ARGS?.split(" ").filter(Boolean) ?? []), ...nodeArgs];
  const child = spawn(process.execPath, [...args, path.join(root, "services", name, "dist/main.js")], {
    env: {
      ...process.env,
      LOG_LEVEL: "warn",
      ...env,
      [name === "gateway" ? "HTTP_PORT" : "GRPC_PORT"]: String(port),
      METRICS_PORT: String(await freePort()),
    },
    // The IPC channel ends the child if this process dies (see runMain in @rdm/runtime).
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await waitForPort(child, name, port);
  return {
    name,
    pid: child.pid as number,
    port,
    // Prints the service's memory as its run ends, so every bench shows each process's.
    async stop() {
      const proc = processOf(child.pid as number);
      if (proc) console.log(`  ${memoryLine(`${name} service`, proc.rssKb, proc.hwmKb)}`);
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

/**
 * A service (startServiceProcess) on a new database of the bench's PostgreSQL, with the bench's
 * broker and token secret and a consumer group of its own.
 */
export async function startServiceOnNewDatabase(
  name: "release" | "change" | "configuration" | "gateway",
  bench: { servers: { kafkaBrokers: string[] }; secret: string },
  nodeArgs: string[] = [],
): Promise<ServiceProcess & { databaseUrl: string }> {
  const db = await createTestDatabase(`bench_${name}`);
  const service = await startServiceProcess(
    name,
    {
      DATABASE_URL: db.url,
      KAFKA_BROKERS: bench.servers.kafkaBrokers.join(","),
      AUTH_JWT_SECRET: bench.secret,
      [`${name.toUpperCase()}_CONSUMER_GROUP`]: `bench-${name}-${randomUUID()}`,
    },
    nodeArgs,
  );
  return { ...service, databaseUrl: db.url };
}

/** CPU seconds of each named process tree (a live process and its live descendants). */
export type CpuSample = Map<string, number>;

/**
 * Samples the CPU seconds of the services (by name), of this process (the load generator and
 * the bare appends) and of its other children (PostgreSQL, the broker launcher), by command name.
 */
export function sampleCpu(services: readonly ServiceProcess[]): CpuSample {
  const stats = new Map(allProcesses().map((p) => [p.pid, p]));
  const children = new Map<number, number[]>();
  for (const [pid, { ppid }] of stats) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  // Its own CPU and its reaped children's, and the same of each live descendant.
  const tree = (pid: number): number =>
    (stats.get(pid)?.ticks ?? 0) +
    (stats.get(pid)?.childTicks ?? 0) +
    (children.get(pid) ?? []).reduce((sum, child) => sum + tree(child), 0);
  const sample: CpuSample = new Map();
  const add = (label: string, ticks: number) => sample.set(label, (sample.get(label) ?? 0) + ticks / TICKS_PER_SECOND);
  const servicePids = new Set(services.map((s) => s.pid));
  for (const service of services) add(`${service.name} service`, tree(service.pid));
  const own = process.cpuUsage();
  sample.set("bench (load generator)", (own.user + own.system) / 1e6);
  for (const pid of children.get(process.pid) ?? []) {
    if (servicePids.has(pid)) continue;
    const stat = stats.get(pid) as Proc;
    add(stat.comm === "node" ? "broker / launchers (node)" : stat.comm, tree(pid));
  }
  return sample;
}

/** One line: CPU seconds per 1,000 calls of each process between two samples. */
export function printCpu(before: CpuSample, after: CpuSample, calls: number): void {
  const parts = [...after]
    .map(([label, seconds]) => [label, ((seconds - (before.get(label) ?? 0)) / calls) * 1000] as const)
    .filter(([, perThousand]) => perThousand >= 0.005)
    .map(([label, perThousand]) => `${label} ${perThousand.toFixed(2)}`);
  console.log(`  CPU s per 1,000 calls: ${parts.join(", ")}`);
}

/**
 * The operator's `pnpm --filter @rdm/<name> rebuild-tables` on `databaseUrl` (the service may run):
 * what it printed and how long it took, which is how long the service's writes to its query
 * tables wait.
 */
export async function rebuildTables(
  name: "release" | "change" | "configuration" | "deployment",
  databaseUrl: string,
): Promise<{ printed: string; seconds: number }> {
  const started = performance.now();
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [path.join(root, "services", name, "dist/rebuild-main.js")],
    { env: { ...process.env, DATABASE_URL: databaseUrl } },
  );
  return { printed: stdout.trim(), seconds: (performance.now() - started) / 1000 };
}
