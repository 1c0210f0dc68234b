// The fleet benchmark's system: `./rdm up`'s supervisor (packages/dev-stack) as a child process,
// on a data folder and ports of its own, and what each of its processes used, read from /proc.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { freePort } from "@rdm/embedded";
import { allProcesses, below, type Proc, TICKS_PER_SECOND } from "./procfs.js";

const ownCheckout = path.resolve(fileURLToPath(new URL("../..", import.meta.url)));
const SERVICES = ["release", "change", "configuration", "deployment"] as const;

export interface DevStack {
  /** `127.0.0.1:<port>` of each gRPC service. */
  addresses: Record<(typeof SERVICES)[number], string>;
  gatewayUrl: string;
  /** The JWT secret the supervisor generated (tokens for other subjects are minted with it). */
  secret: string;
  pid: number;
  /** The supervisor's output (removed with the data folder by stop()). */
  log: string;
  stop(): Promise<void>;
}

/**
 * Starts `./rdm up`'s supervisor with `executors` reference executors; resolves once it says it is
 * up. `checkout`: the built tree whose supervisor runs (this one by default).
 */
export async function startDevStack(executors: number, checkout = ownCheckout): Promise<DevStack> {
  const dataDir = mkdtempSync(path.join(tmpdir(), "rdm-fleet-"));
  const ports: Record<string, number> = {};
  for (const name of [...SERVICES, "gateway"]) ports[name] = await freePort();
  const env: Record<string, string> = {
    RDM_DATA_DIR: dataDir,
    RDM_EXECUTORS: String(executors),
    RDM_POSTGRES_PORT: String(await freePort()),
    GATEWAY_HTTP_PORT: String(ports.gateway),
  };
  for (const name of SERVICES) env[`${name.toUpperCase()}_GRPC_PORT`] = String(ports[name]);
  for (const name of [...SERVICES, "gateway"]) env[`${name.toUpperCase()}_METRICS_PORT`] = String(await freePort());
  const child = spawn(process.execPath, [path.join(checkout, "packages/dev-stack/dist/main.js")], {
    env: { ...process.env, ...env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = path.join(dataDir, "supervisor.log");
  const out = createWriteStream(log);
  child.stderr?.pipe(out);
  await new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the supervisor exited (${code}); see ${log}`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      out.write(`${line}\n`);
      if (line.includes("Ctrl-C stops everything.")) resolve();
    });
  });
  child.removeAllListeners("exit");
  return {
    addresses: Object.fromEntries(SERVICES.map((s) => [s, `127.0.0.1:${ports[s]}`])) as DevStack["addresses"],
    gatewayUrl: `http://127.0.0.1:${ports.gateway}`,
    secret: readFileSync(path.join(dataDir, "dev-jwt-secret"), "utf8").trim(),
    pid: child.pid as number,
    log,
    // The data folder (PostgreSQL's files) goes with a clean stop; a failed start keeps it, log included.
    stop: () => stopChild(child).then(() => rmSync(dataDir, { recursive: true, force: true })),
  };
}

/** SIGINT, as Ctrl-C: the supervisor stops its children, the broker and PostgreSQL, then exits. */
function stopChild(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGINT");
  });
}

/** What a process of the stack is, from its command line. */
function labelOf({ argv }: Proc): string {
  const cmdline = argv.join(" ");
  const service = /services\/(\w+)\/dist\/main\.js/.exec(cmdline)?.[1];
  if (service) return service;
  const executor = /executor\/cli\.js .*--id (\S+)/.exec(cmdline)?.[1];
  if (executor) return executor;
  if (/kafka/i.test(cmdline)) return "kafka (mock)";
  if (/postgres/i.test(cmdline)) return "postgres";
  return cmdline.slice(0, 40);
}

export interface ProcessUsage {
  label: string;
  /** CPU seconds of the process and everything below it (ended children included). */
  cpuSeconds: number;
  /** Peak RSS (VmHWM) of the process itself; of the largest one below it for `processes` > 1. */
  peakRssMb: number;
  processes: number;
}

/**
 * Each child of `supervisorPid` with its whole subtree (PostgreSQL's server and backends under
 * its launcher), and the supervisor itself.
 */
export function processUsage(supervisorPid: number): ProcessUsage[] {
  const all = allProcesses();
  const usage = (label: string, top: Proc, rest: Proc[]): ProcessUsage => ({
    label,
    cpuSeconds: [top, ...rest].reduce((sum, p) => sum + p.ticks + p.childTicks, 0) / TICKS_PER_SECOND,
    peakRssMb: Math.max(top.hwmKb, ...rest.map((p) => p.hwmKb)) / 1024,
    processes: 1 + rest.length,
  });
  const supervisor = all.find((p) => p.pid === supervisorPid);
  const rows = all
    .filter((p) => p.ppid === supervisorPid)
    .map((child) => usage(labelOf(child), child, below(all, child.pid)));
  return supervisor
    ? [...rows, { ...usage("supervisor", supervisor, []), cpuSeconds: supervisor.ticks / TICKS_PER_SECOND }]
    : rows;
}
