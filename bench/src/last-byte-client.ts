// AnalyzeImpact timed to the answer's last byte (impact-latency.ts), in a worker thread: gRPC
// framed by hand over node:http2, the answer counted and dropped. Its own small heap and no
// per-call objects of a gRPC library keep the load generator's garbage collections (the seeded
// CMDB, the decoded answers of the other series) out of what the service and the wire take.
import http2 from "node:http2";
import { type MessagePort, parentPort, Worker, workerData } from "node:worker_threads";
import { create, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import type { DurationSchema } from "@bufbuild/protobuf/wkt";
import {
  AnalyzeImpactRequestSchema,
  ConfigurationService,
  type ImpactPathDetail,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";

export interface ImpactRequest {
  ciId: string;
  maxDepth: number;
  pathDetail: ImpactPathDetail;
  maxStaleness?: MessageInitShape<typeof DurationSchema>;
}

interface Job {
  address: string;
  token: string;
  /** Called first, untimed. */
  warmUp: ImpactRequest[];
  timed: ImpactRequest[];
}

export interface LastByteTimes {
  /** Milliseconds from sending the request to the answer's last byte, one per timed call. */
  latencies: number[];
  /** Each answer's size in bytes. */
  sizes: number[];
}

/**
 * Runs the calls one after another in a worker thread; resolves with each timed one's time and
 * size. `timing` is called in this thread between the warm-up and the timed calls.
 */
export function timeToLastByte(job: Job, timing: () => void): Promise<LastByteTimes> {
  const worker = new Worker(new URL(import.meta.url), { workerData: job });
  return new Promise<LastByteTimes>((resolve, reject) => {
    worker.once("message", () => {
      timing();
      worker.once("message", resolve);
      worker.postMessage("time");
    });
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`last-byte client exited (${code}) before answering`)));
  }).finally(() => worker.terminate());
}

/** The request as gRPC sends it: a 5-byte prefix (not compressed, length), then the message. */
function framed(request: ImpactRequest): Buffer {
  const message = toBinary(AnalyzeImpactRequestSchema, create(AnalyzeImpactRequestSchema, request));
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}

/** One unary call: resolves with the answer's size once its last byte and an OK status arrived. */
function call(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, frame: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers);
    let bytes = 0;
    let status: string | undefined;
    // A failed call may answer with its status in the headers alone.
    const statusOf = (answered: http2.IncomingHttpHeaders) => {
      status ??= answered["grpc-status"] as string | undefined;
    };
    stream.on("response", statusOf);
    stream.on("trailers", statusOf);
    stream.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    stream.on("error", reject);
    stream.on("end", () =>
      status === "0" ? resolve(bytes - 5) : reject(new Error(`AnalyzeImpact answered grpc-status ${status}`)),
    );
    stream.end(frame);
  });
}

async function run({ address, token, warmUp, timed }: Job, port: MessagePort): Promise<LastByteTimes> {
  const session = http2.connect(`http://${address}`);
  const headers = {
    ":method": "POST",
    ":path": `/${ConfigurationService.typeName}/AnalyzeImpact`,
    "content-type": "application/grpc",
    te: "trailers",
    authorization: `Bearer ${token}`,
  };
  try {
    for (const request of warmUp) await call(session, headers, framed(request));
    // The timed requests are encoded beforehand, and this thread's heap collected, so that the
    // timed calls make as little garbage as they can.
    const frames = timed.map(framed);
    (globalThis as { gc?: () => void }).gc?.();
    // Warmed up: the timed calls start when the other thread says so.
    const go = new Promise((resolve) => port.once("message", resolve));
    port.postMessage("warm");
    await go;
    const times: LastByteTimes = { latencies: [], sizes: [] };
    for (const frame of frames) {
      const started = performance.now();
      times.sizes.push(await call(session, headers, frame));
      times.latencies.push(performance.now() - started);
    }
    return times;
  } finally {
    session.close();
  }
}

// In the worker: a failed run ends it with its error, which rejects timeToLastByte.
if (parentPort) {
  const port = parentPort;
  void run(workerData as Job, port).then((times) => port.postMessage(times));
}
