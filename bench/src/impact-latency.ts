// AnalyzeImpact latency, sequential calls from random roots, measured twice on the same roots:
// to the answer's last byte (what the service and the wire take, whatever the client's language)
// and decoded into protobuf-es messages (what a TypeScript client waits for). Decoding a
// 10,000-item answer costs protobuf-es tens of milliseconds of the load generator's CPU, and its
// garbage pauses the slowest calls, so only the first says how fast the service answers.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { GrpcClient } from "@rdm/grpc";
import {
  type ConfigurationService,
  ImpactPathDetail,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { type ImpactRequest, timeToLastByte } from "./last-byte-client.js";
import { type ServiceProcess, sampleCpu } from "./processes.js";
import { ms, percentile } from "./support.js";

// A full collection of this process's heap before each series, so the garbage of the one before
// (10,000 decoded items a call) is not collected, as a pause of the load generator, in the next.
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

interface Series {
  latencies: number[];
  /** This process's CPU per call (receiving, decoding), which a busy machine stretches far less than the latency. */
  cpu?: number[];
  sizes: number[];
  /** The service's CPU seconds per call, on average. */
  serviceCpu: number;
}

/**
 * Runs a series, which calls `timing()` once its warm-up is done: then this thread's heap gets a
 * full collection and the service's CPU starts being counted. Adds the
 * timed calls' CPU seconds in the service, on average; the figures come back sorted.
 */
async function measured(
  service: ServiceProcess,
  calls: number,
  run: (timing: () => void) => Promise<Omit<Series, "serviceCpu">>,
): Promise<Series> {
  const cpuOf = () => sampleCpu([service]).get("configuration service") as number;
  let before = Number.NaN;
  const result: Series = {
    ...(await run(() => {
      collectGarbage();
      before = cpuOf();
    })),
    serviceCpu: 0,
  };
  result.serviceCpu = (cpuOf() - before) / calls;
  for (const values of [result.latencies, result.cpu ?? [], result.sizes]) values.sort((a, b) => a - b);
  return result;
}

/** Decoded by protobuf-es through the services' own client, in this process. */
function decodedSeries(client: Client, { warmUp, timed }: Calls, service: ServiceProcess): Promise<Series> {
  return measured(service, timed.length, async (timing) => {
    for (const request of warmUp) await client.analyzeImpact(request);
    timing();
    const result = { latencies: [] as number[], cpu: [] as number[], sizes: [] as number[] };
    for (const request of timed) {
      const started = performance.now();
      const cpuBefore = process.cpuUsage();
      result.sizes.push((await client.analyzeImpact(request)).impacted.length);
      const used = process.cpuUsage(cpuBefore);
      result.latencies.push(performance.now() - started);
      result.cpu.push((used.user + used.system) / 1000);
    }
    return result;
  });
}

const figures = ({ latencies, cpu, serviceCpu }: Series) => {
  const client = cpu ? `client CPU p50 ${ms(percentile(cpu, 50))}, p99 ${ms(percentile(cpu, 99))}; ` : "";
  return `p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))} (${client}service CPU ${ms(serviceCpu * 1000)} a call)`;
};

type Client = GrpcClient<typeof ConfigurationService.method>;
type Calls = { warmUp: ImpactRequest[]; timed: ImpactRequest[] };

/**
 * Prints, for the whole closure (whole paths, then parent pointers) and for depth 3, the latency
 * to the last byte and decoded, each beside its goal.
 */
export async function impactLatency(
  client: Client,
  { address, token, service }: { address: string; token: string; service: ServiceProcess },
  pickRoot: () => string,
  graph: string,
): Promise<void> {
  // Each series after untimed calls of its kind: a freshly started service's code is still being
  // optimised over its first thousands of calls (depth 3: about 2 ms of CPU a call at first, 1 ms
  // after 2,000), and the figures are meant for a service that has been up a while.
  // The last of each row: max_staleness in seconds (0: every write committed before the call).
  for (const [label, maxDepth, pathDetail, runs, warmUps, goal, staleSeconds] of [
    ["whole transitive closure", 0, ImpactPathDetail.UNSPECIFIED, 200, 20, "goal p50 < 50 ms, p99 < 100 ms", 0n],
    [
      "whole transitive closure, parent pointers",
      0,
      ImpactPathDetail.PARENT,
      200,
      20,
      "goal p50 < 50 ms, p99 < 100 ms",
      0n,
    ],
    ["max depth 3", 3, ImpactPathDetail.UNSPECIFIED, 1000, 2000, "goal p99 < 5 ms", 0n],
    // The same, answered from the graph as last brought up to date (refreshed in the background).
    ["max depth 3, max_staleness 1 s", 3, ImpactPathDetail.UNSPECIFIED, 1000, 2000, "goal p99 < 5 ms", 1n],
  ] as const) {
    const staleness = staleSeconds > 0n ? { maxStaleness: { seconds: staleSeconds } } : {};
    const requestsOf = (n: number) =>
      Array.from({ length: n }, () => ({ ciId: pickRoot(), maxDepth, pathDetail, ...staleness }));
    const calls: Calls = { warmUp: requestsOf(warmUps), timed: requestsOf(runs) };
    const wire = await measured(service, runs, (timing) => timeToLastByte({ address, token, ...calls }, timing));
    const typed = await decodedSeries(client, calls, service);
    const answers = `p50 ${percentile(typed.sizes, 50)} CIs, ${(percentile(wire.sizes, 50) / 1024).toFixed(0)} KB`;
    console.log(`AnalyzeImpact (${label}) on ${graph}, ${runs} random roots, answers ${answers} (${goal}):`);
    console.log(`  to the last byte:       ${figures(wire)}`);
    console.log(`  decoded by protobuf-es: ${figures(typed)}`);
  }
}
