import { readFileSync } from "node:fs";
import { createServer } from "node:net";

const LOWEST = 10_000;
/** The range is dealt into lanes: a port's lane is port % LANES (LOWEST is a multiple of it). */
const LANES = 16;

/**
 * Jest runs test files side by side in workers numbered from 1 (`JEST_WORKER_ID`, inherited by
 * the processes a test starts). Each worker draws ports from its own lane, so a port one test
 * file chose and released for a moment (a stack restarted on the same ports) cannot be chosen by
 * another file meanwhile; outside Jest the lane is 0.
 */
function lane(): number {
  const worker = Number(process.env.JEST_WORKER_ID);
  return Number.isInteger(worker) && worker > 0 ? worker % LANES : 0;
}

/** Every port freePort has returned in this process: never returned twice (a stack's ports are drawn together). */
const handedOut = new Set<number>();

/** First port of the kernel's ephemeral range (Linux; 32768 where it cannot be read). */
function ephemeralStart(): number {
  try {
    const [first] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (first && first > LOWEST + 1_000) return first;
  } catch {
    // not Linux
  }
  return 32_768;
}

/** Binds `port` (0: the OS picks) on 127.0.0.1, closes it again, and says which port that was. */
function probe(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(undefined));
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      const bound = typeof address === "object" && address ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago, for a server that binds it a little later
 * (PostgreSQL, a child process). It is chosen below the kernel's ephemeral range: other
 * processes' port-0 listeners and outgoing connections take ports from that range, so they
 * cannot take this one in the meantime. Under Jest each worker has its own lane (`lane`).
 */
export async function freePort(): Promise<number> {
  const slots = Math.floor((ephemeralStart() - LOWEST) / LANES);
  for (let attempt = 0; attempt < 50; attempt++) {
    const candidate = LOWEST + Math.floor(Math.random() * slots) * LANES + lane();
    // Free now, but perhaps already given to a caller that has not bound it yet.
    if (handedOut.has(candidate)) continue;
    const port = await probe(candidate);
    if (port) {
      handedOut.add(port);
      return port;
    }
  }
  const port = await probe(0);
  if (!port) throw new Error("no free TCP port on 127.0.0.1");
  return port;
}
