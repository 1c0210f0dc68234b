// AnalyzeImpact latency, sequential calls from random roots, measured twice on the same roots:
// to the answer's last byte (what the service and the wire take, whatever the client's language)
// and decoded into protobuf-es messages (what a TypeScript client waits for). Decoding a
// 10,000-item answer costs protobuf-es tens of milliseconds of the load generator's CPU, and its
// garbage pauses the slowest calls, so only the first says how fast the service answers.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { create, toBinary } from "@bufbuild/protobuf";
import { credentials, Client as GrpcJsClient, Metadata } from "@grpc/grpc-js";
import type { GrpcClient } from "@rdm/grpc";
import {
  AnalyzeImpactRequestSchema,
  ConfigurationService,
  ImpactPathDetail,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { type ServiceProcess, sampleCpu } from "./processes.js";
import { ms, percentile } from "./support.js";

type Request = { ciId: string; maxDepth: number; pathDetail: ImpactPathDetail };
/** One AnalyzeImpact call; resolves with the size of its answer (bytes, or decoded items). */
type Call = (request: Request) => Promise<number>;

// A full collection of this process's heap before each series, so the garbage of the one before
// (10,000 decoded items a call) is not collected, as a pause of the load generator, in the next.
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

/** AnalyzeImpact through grpc-js with the answer left as bytes. */
function bytesClient(address: string, token: string): { call: Call; close: () => void } {
  const client = new GrpcJsClient(address, credentials.createInsecure());
  const method = `/${ConfigurationService.typeName}/AnalyzeImpact`;
  const serialize = (request: Request) =>
    Buffer.from(toBinary(AnalyzeImpactRequestSchema, create(AnalyzeImpactRequestSchema, request)));
  const call: Call = (request) => {
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(
        method,
        serialize,
        (answer: Buffer) => answer,
        request,
        metadata,
        (error, answer) => (error ? reject(error) : resolve(answer?.length ?? 0)),
      ),
    );
  };
  return { call, close: () => client.close() };
}

interface Series {
  latencies: number[];
  /** This process's CPU per call (sending, receiving, decoding), which a busy machine stretches far less than the latency. */
  cpu: number[];
  sizes: number[];
  /** The service's CPU seconds per call, on average. */
  serviceCpu: number;
}

async function series(call: Call, roots: string[], request: Omit<Request, "ciId">, service: ServiceProcess) {
  for (const ciId of roots.slice(0, 10)) await call({ ciId, ...request }); // warm-up
  const result: Series = { latencies: [], cpu: [], sizes: [], serviceCpu: 0 };
  collectGarbage();
  const serviceCpuBefore = sampleCpu([service]).get("configuration service") as number;
  for (const ciId of roots) {
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    result.sizes.push(await call({ ciId, ...request }));
    const used = process.cpuUsage(cpuBefore);
    result.latencies.push(performance.now() - started);
    result.cpu.push((used.user + used.system) / 1000);
  }
  result.serviceCpu = ((sampleCpu([service]).get("configuration service") as number) - serviceCpuBefore) / roots.length;
  for (const values of [result.latencies, result.cpu, result.sizes]) values.sort((a, b) => a - b);
  return result;
}

const figures = ({ latencies, cpu, serviceCpu }: Series) =>
  `p50 ${ms(percentile(latencies, 50))}, p99 ${ms(percentile(latencies, 99))} (client CPU p50 ${ms(percentile(cpu, 50))}, p99 ${ms(percentile(cpu, 99))}; service CPU ${ms(serviceCpu * 1000)} a call)`;

/**
 * Prints, for the whole closure (whole paths, then parent pointers) and for depth 3, the latency
 * to the last byte and decoded, each beside its goal.
 */
export async function impactLatency(
  client: GrpcClient<typeof ConfigurationService.method>,
  { address, token, service }: { address: string; token: string; service: ServiceProcess },
  pickRoot: () => string,
  graph: string,
): Promise<void> {
  const bytes = bytesClient(address, token);
  const decoded: Call = async (request) => (await client.analyzeImpact(request)).impacted.length;
  for (const [label, maxDepth, pathDetail, runs, goal] of [
    ["whole transitive closure", 0, ImpactPathDetail.UNSPECIFIED, 200, "goal p50 < 50 ms, p99 < 100 ms"],
    ["whole transitive closure, parent pointers", 0, ImpactPathDetail.PARENT, 200, "goal p50 < 50 ms, p99 < 100 ms"],
    ["max depth 3", 3, ImpactPathDetail.UNSPECIFIED, 1000, "goal p99 < 5 ms"],
  ] as const) {
    const roots = Array.from({ length: runs }, pickRoot);
    const wire = await series(bytes.call, roots, { maxDepth, pathDetail }, service);
    const typed = await series(decoded, roots, { maxDepth, pathDetail }, service);
    const answers = `p50 ${percentile(typed.sizes, 50)} CIs, ${(percentile(wire.sizes, 50) / 1024).toFixed(0)} KB`;
    console.log(`AnalyzeImpact (${label}) on ${graph}, ${runs} random roots, answers ${answers} (${goal}):`);
    console.log(`  to the last byte:       ${figures(wire)}`);
    console.log(`  decoded by protobuf-es: ${figures(typed)}`);
  }
  bytes.close();
}
