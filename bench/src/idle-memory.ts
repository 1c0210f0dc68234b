// Idle memory of `./rdm up` as it runs: its supervisor (packages/dev-stack) on a data folder and
// ports of its own, which starts embedded PostgreSQL and the mock Kafka cluster (each behind a
// Node launcher), the four gRPC services, the gateway and the reference executor, each with the
// IPC channel and node flags it gives them. Once it is up and has idled, prints the RSS of every
// process below it, read from /proc.
//   node bench/dist/idle-memory.js [checkout]   (IDLE_SECONDS=30; checkout: another built tree to measure)
import path from "node:path";
import { startDevStack } from "./fleet-stack.js";
import { allProcesses, below, loadAverage, type Proc } from "./procfs.js";

const idleMs = Number(process.env.IDLE_SECONDS ?? 30) * 1000;

/** The supervisor and every process below it. */
function stackProcesses(supervisorPid: number): Proc[] {
  const all = allProcesses();
  const supervisor = all.find((p) => p.pid === supervisorPid);
  return supervisor ? [supervisor, ...below(all, supervisorPid)] : [];
}

/** What a Node process of the stack runs, from its script's path. */
function labelOf(script: string, { argv }: Proc): string {
  const service = /services\/(\w+)\/dist\/main\.js$/.exec(script)?.[1];
  if (service) return service;
  if (script.endsWith("executor/cli.js")) return argv[argv.indexOf("--id") + 1] ?? "executor";
  if (script.endsWith("dev-stack/dist/main.js")) return "supervisor";
  if (script.endsWith("postgres-process.js")) return "postgres launcher";
  if (script.endsWith("kafka-mock-process.js")) return "kafka launcher (mock cluster)";
  return path.basename(script);
}

const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`.padStart(7);

function report(processes: Proc[]): void {
  const others = new Map<string, Proc[]>();
  let nodeTotal = 0;
  for (const proc of processes) {
    if (proc.argv[0] !== process.execPath) {
      others.set(proc.comm, [...(others.get(proc.comm) ?? []), proc]);
      continue;
    }
    const scriptAt = proc.argv.findIndex((arg, i) => i > 0 && !arg.startsWith("-"));
    const flags = proc.argv.slice(1, scriptAt).join(" ") || "(no flags)";
    nodeTotal += proc.rssKb;
    console.log(`${labelOf(proc.argv[scriptAt] ?? "", proc).padEnd(30)} ${mb(proc.rssKb)}  ${flags}`);
  }
  console.log(`${"Node processes, total".padEnd(30)} ${mb(nodeTotal)}`);
  // PostgreSQL's server and backends, and any helper process the services start.
  for (const [program, procs] of others) {
    const sum = procs.reduce((total, p) => total + p.rssKb, 0);
    console.log(`${`${program} × ${procs.length}`.padEnd(30)} ${mb(sum)}  (not Node; summed, shared pages in each)`);
  }
}

async function main() {
  const checkout = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, "../.."));
  console.log(`checkout ${checkout}; load average before start ${loadAverage()}`);
  const started = Date.now();
  const stack = await startDevStack(1, checkout);
  try {
    console.log(`up after ${Math.round((Date.now() - started) / 1000)} s; idle for ${idleMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    report(stackProcesses(stack.pid));
    console.log(`load average ${loadAverage()}`);
  } finally {
    await stack.stop();
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
