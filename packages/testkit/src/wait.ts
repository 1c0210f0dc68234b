import { randomBytes } from "node:crypto";

export interface WaitForOptions {
  /**
   * Give up after this long (default 30 000 ms: a Kafka round trip through a consumer group on a
   * loaded two-core machine, with room; a passing wait takes no longer for it).
   */
  timeoutMs?: number;
  /** Pause between attempts (default 50 ms). */
  intervalMs?: number;
  /** What is awaited, for the timeout message. */
  description?: string;
}

type Truthy<T> = Exclude<T, false | null | undefined | 0 | "">;

/**
 * Polls `fn` until it returns a truthy value and resolves with that value. A throwing attempt
 * counts as "not yet". Throws after `timeoutMs`, naming `description` and the last error.
 */
export async function waitFor<T>(fn: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Truthy<T>> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let attempts = 0;
  for (;;) {
    attempts++;
    const remaining = deadline - Date.now();
    try {
      // An attempt that hangs must not outlive the deadline.
      const value = await withTimeout(Promise.resolve().then(fn), Math.max(remaining, 1));
      if (value) return value as Truthy<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() + intervalMs > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  const what = options.description ?? "condition";
  const cause =
    lastError instanceof Error
      ? `; last error: ${lastError.message}`
      : lastError
        ? `; last error: ${String(lastError)}`
        : "";
  throw new Error(`Timed out after ${timeoutMs} ms (${attempts} attempts) waiting for ${what}${cause}`, {
    cause: lastError,
  });
}

const attemptTimedOut = Symbol("attemptTimedOut");

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof attemptTimedOut>((resolve) => {
    timer = setTimeout(() => resolve(attemptTimedOut), ms);
  });
  try {
    const result = await Promise.race([promise, timeout]);
    if (result === attemptTimedOut) throw new Error(`attempt still pending after ${ms} ms`);
    return result;
  } finally {
    clearTimeout(timer);
  }
}

let counter = 0;

/** `prefix-<time><counter>-<random>`: unique across processes and runs; only [a-z0-9-] after the prefix. */
export function uniqueId(prefix: string): string {
  counter = (counter + 1) % 1_679_616;
  return `${prefix}-${Date.now().toString(36)}${counter.toString(36).padStart(4, "0")}-${randomBytes(4).toString("hex")}`;
}
