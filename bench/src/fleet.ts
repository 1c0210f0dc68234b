// Fleet: N releases through M environments on the whole system as `./rdm up` runs it (the
// dev-stack supervisor: embedded PostgreSQL, the mock broker, each service and the gateway a
// process of its own) with 4 reference executors as processes. Each release goes the way of
// test/e2e/release-to-production: change authorized, release approved, deployed through every
// environment in promotion order, production success, verified, reviewed, closed; the N flows
// run side by side. Prints throughput, command → gateway visibility per combined view (from the
// view stream), and each process's CPU seconds and peak RSS.
//   node bench/dist/fleet.js [releases = 8] [environments = 3] [executors = 4]
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { type Cast, clientsFor, registerEnvironments, releaseThroughFleet } from "./fleet-flow.js";
import { type DevStack, type ProcessUsage, processUsage, startDevStack } from "./fleet-stack.js";
import { VIEWS, type ViewWatch, watchViews } from "./fleet-views.js";
import { loadAverage } from "./procfs.js";
import { ms, percentile, runBenchmark } from "./support.js";

const argument = (at: number, fallback: number) => Number(process.argv[at] ?? fallback);
const [releases, environments, executors] = [argument(2, 8), argument(3, 3), argument(4, 4)];

async function castOf(stack: DevStack, watch: () => ViewWatch | undefined): Promise<Cast> {
  const olivia = await clientsFor(stack, "olivia", [
    "release-manager",
    "release-coordinator",
    "change-manager",
    "config-manager",
    "deployer",
  ]);
  const ann = await clientsFor(stack, "ann", ["approver"], ["cab"]);
  const ben = await clientsFor(stack, "ben", ["approver"], ["cab"]);
  const rid = () => {
    const requestId = randomUUID();
    watch()?.sent(requestId);
    return { requestId };
  };
  return { olivia, ann, ben, rid };
}

function printVisibility(watch: ViewWatch) {
  console.log(`\ncommand → gateway view stream (${watch.received()} stream events):`);
  console.log(`${"view".padEnd(10)} ${"commands".padStart(8)} ${"p50".padStart(11)} ${"p99".padStart(11)}`);
  for (const view of VIEWS) {
    const sorted = [...(watch.latencies()[view] ?? [])].sort((a, b) => a - b);
    const [p50, p99] = [percentile(sorted, 50), percentile(sorted, 99)];
    console.log(
      `${view.padEnd(10)} ${String(sorted.length).padStart(8)} ${ms(p50).padStart(11)} ${ms(p99).padStart(11)}`,
    );
  }
}

function printUsage(before: ProcessUsage[], after: ProcessUsage[], runSeconds: number) {
  console.log(`\nprocesses (CPU during the ${runSeconds.toFixed(0)} s run; peak RSS since start):`);
  console.log(`${"process".padEnd(20)} ${"CPU s".padStart(8)} ${"CPU %".padStart(6)} ${"peak RSS".padStart(10)}`);
  let total = 0;
  for (const row of after) {
    const cpu = row.cpuSeconds - (before.find((b) => b.label === row.label)?.cpuSeconds ?? 0);
    total += cpu;
    const what = row.processes > 1 ? `${row.label} (${row.processes})` : row.label;
    const percent = ((100 * cpu) / runSeconds).toFixed(0);
    console.log(
      `${what.padEnd(20)} ${cpu.toFixed(1).padStart(8)} ${percent.padStart(6)} ${`${row.peakRssMb.toFixed(0)} MB`.padStart(10)}`,
    );
  }
  const own = process.cpuUsage();
  const benchCpu = (own.user + own.system) / 1e6;
  const benchRss = `${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`;
  console.log(
    `${"bench (clients)".padEnd(20)} ${benchCpu.toFixed(1).padStart(8)} ${"".padStart(6)} ${benchRss.padStart(10)}`,
  );
  console.log(`${"stack total".padEnd(20)} ${total.toFixed(1).padStart(8)}`);
}

async function runFleet(stack: DevStack) {
  let watch: ViewWatch | undefined;
  const cast = await castOf(stack, () => watch);
  const names = await registerEnvironments(cast, environments);
  watch = await watchViews(stack.gatewayUrl, cast.olivia.token);
  const before = processUsage(stack.pid);
  const load = loadAverage();
  const startedAt = performance.now();
  const times = await Promise.all(
    Array.from({ length: releases }, (_, i) => releaseThroughFleet(cast, i + 1, names, startedAt)),
  );
  const runSeconds = (performance.now() - startedAt) / 1000;
  // Let the gateway catch up with the last commands before reading what it showed.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const after = processUsage(stack.pid);
  watch.close();
  const lastProduction = Math.max(...times.map((t) => t.production)) / 60_000;
  const lastClosed = Math.max(...times.map((t) => t.closed)) / 60_000;
  console.log(`\nload average at start ${load}, at end ${loadAverage()}`);
  console.log(
    `${releases} releases × ${environments} environments, ${executors} executors, run ${runSeconds.toFixed(0)} s`,
  );
  console.log(`throughput through production: ${(releases / lastProduction).toFixed(2)} releases/min`);
  console.log(`throughput to closed:           ${(releases / lastClosed).toFixed(2)} releases/min`);
  const sorted = times.map((t) => t.production / 1000).sort((a, b) => a - b);
  console.log(
    `one release to production: p50 ${sorted[Math.floor(sorted.length / 2)]?.toFixed(0)} s, max ${sorted.at(-1)?.toFixed(0)} s`,
  );
  printVisibility(watch);
  printUsage(before, after, runSeconds);
}

async function main() {
  if (![releases, environments, executors].every((n) => Number.isInteger(n) && n >= 1))
    throw new Error("usage: node bench/dist/fleet.js [releases >= 1] [environments >= 1] [executors >= 1]");
  console.log(`load average before the stack starts: ${loadAverage()}`);
  const started = performance.now();
  const stack = await startDevStack(executors);
  console.log(`./rdm up's supervisor up in ${((performance.now() - started) / 1000).toFixed(0)} s (log: ${stack.log})`);
  try {
    await runFleet(stack);
  } finally {
    await stack.stop();
  }
}

runBenchmark(main);
