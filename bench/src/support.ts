// What every benchmark script shares: percentiles, formatting, and running main to an exit code.

/** The p-th percentile of an ascending array (nearest rank). */
export const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;

export const ms = (n: number) => `${n.toFixed(1)} ms`;

/** Runs a benchmark and exits (servers and clients may hold the event loop open). */
export function runBenchmark(main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
