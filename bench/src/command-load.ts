// Commands over gRPC at a fixed number in flight, printed beside the same run's bare appends, with
// the CPU each process spent on them.
import { type CpuSample, printCpu, type ServiceProcess, sampleCpu } from "./processes.js";
import { ms, percentile } from "./support.js";

export interface LoadFigures {
  callsPerSecond: number;
  p50: number;
  p99: number;
}

/** `total` calls, `concurrency` in flight; `call(worker)` lets each worker keep to its own stream. */
export async function underLoad(
  concurrency: number,
  total: number,
  call: (worker: number) => Promise<unknown>,
): Promise<LoadFigures> {
  const latencies: number[] = [];
  let issued = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (issued++ < total) {
        const t0 = performance.now();
        await call(worker);
        latencies.push(performance.now() - t0);
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { callsPerSecond: total / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
}

/** One line: the figures, and calls/s as a share of the bare appends at 16 writers. */
export function printLoad(name: string, concurrency: number, figures: LoadFigures, bareAppends: number): void {
  const ratio = figures.callsPerSecond / bareAppends;
  console.log(
    `${name.padEnd(32)} ${concurrency} in flight: ${figures.callsPerSecond.toFixed(0).padStart(5)} calls/s ` +
      `(${ratio.toFixed(2)}× bare appends), p50 ${ms(figures.p50)}, p99 ${ms(figures.p99)}`,
  );
}

/** underLoad, then its line and the CPU seconds per 1,000 calls of each process of the run. */
export async function measureLoad(
  name: string,
  concurrency: number,
  total: number,
  call: (worker: number) => Promise<unknown>,
  context: { bareAppends: number; services: readonly ServiceProcess[] },
): Promise<LoadFigures> {
  const before: CpuSample = sampleCpu(context.services);
  const figures = await underLoad(concurrency, total, call);
  printLoad(name, concurrency, figures, context.bareAppends);
  printCpu(before, sampleCpu(context.services), total);
  return figures;
}
