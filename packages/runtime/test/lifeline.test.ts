// endWithSupervisor run in real processes: a "supervisor" process starts a "service" with an IPC
// channel, as `./rdm up` does; the service calls endWithSupervisor from the built package.
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const lifeline = fileURLToPath(new URL("../dist/lifeline.js", import.meta.url));
const GRACE_MS = 1_000;

/**
 * A service: on the supervisor's loss, `stop` writes "stopped" to `stoppedFile` (and ends the
 * process unless `stuck`); it prints its pid once endWithSupervisor returned, then either blocks
 * its main thread for good (`stuck`) or idles.
 */
const service = (stoppedFile: string, stuck: boolean) => `
  import { writeFileSync, writeSync } from "node:fs";
  const { endWithSupervisor } = await import(${JSON.stringify(lifeline)});
  endWithSupervisor(() => {
    writeFileSync(${JSON.stringify(stoppedFile)}, "stopped");
    if (!${stuck}) process.exit(0);
  }, ${GRACE_MS});
  writeSync(1, process.pid + "\\n");
  if (${stuck}) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  else setInterval(() => {}, 60_000);
`;

const started: ChildProcess[] = [];
const pids: number[] = [];
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "rdm-lifeline-"));
});
afterEach(async () => {
  for (const child of started.splice(0)) child.kill("SIGKILL");
  for (const pid of pids.splice(0)) if (running(pid)) process.kill(pid, "SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

/** Alive and not a zombie waiting to be reaped. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The processes whose parent is `pid`, with their command names. */
function childrenOf(pid: number): { pid: number; comm: string }[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((entry) => {
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const comm = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
        return ppid === pid ? [{ pid: Number(entry), comm }] : [];
      } catch {
        return []; // ended meanwhile
      }
    });
}

async function eventually(check: () => boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Runs `script` as a Node process whose stdout is piped here; resolves with its first line. */
async function run(script: string, stdio: "ipc" | "no ipc" = "no ipc"): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "inherit", ...(stdio === "ipc" ? (["ipc"] as const) : [])],
  });
  started.push(child);
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`exited (${code}) before printing`)));
  });
  return { child, line };
}

/** A supervisor that starts `serviceScript` with an IPC channel, its stdout being ours. */
async function supervised(serviceScript: string) {
  const { child: supervisor, line } = await run(`
    import { spawn } from "node:child_process";
    spawn(process.execPath, ["--input-type=module", "-e", ${JSON.stringify(serviceScript)}], {
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    setInterval(() => {}, 60_000);
  `);
  const servicePid = Number(line);
  pids.push(servicePid);
  const watchdogs = childrenOf(servicePid);
  expect(watchdogs.map(({ comm }) => comm)).toEqual(["sh"]);
  return { supervisor, servicePid, watchdogPid: (watchdogs[0] as { pid: number }).pid };
}

test("the supervisor killed: stop runs and the process ends; its watchdog ends with it", async () => {
  const stoppedFile = path.join(dir, "stopped");
  const { supervisor, servicePid, watchdogPid } = await supervised(service(stoppedFile, false));
  supervisor.kill("SIGKILL");
  await eventually(() => !running(servicePid), 30_000, "the service to end");
  expect(await readFile(stoppedFile, "utf8")).toBe("stopped");
  await eventually(() => !running(watchdogPid), 30_000, "the watchdog to end");
});

test("the supervisor killed while the service's main thread is stuck: the watchdog kills it after the grace time", async () => {
  const stoppedFile = path.join(dir, "stopped");
  const { supervisor, servicePid, watchdogPid } = await supervised(service(stoppedFile, true));
  supervisor.kill("SIGKILL");
  // Only a kill from outside ends a main thread blocked for good.
  await eventually(() => !running(servicePid), 30_000, "the stuck service to be killed");
  await eventually(() => !running(watchdogPid), 30_000, "the watchdog to end");
  // Its main thread never ran the "disconnect" handler.
  expect(existsSync(stoppedFile)).toBe(false);
});

test("the service killed while its supervisor lives: the watchdog ends and the supervisor is untouched", async () => {
  const { supervisor, servicePid, watchdogPid } = await supervised(service(path.join(dir, "stopped"), true));
  process.kill(servicePid, "SIGKILL");
  await eventually(() => !running(watchdogPid), 30_000, "the watchdog to end");
  expect(supervisor.exitCode).toBeNull();
  expect(running(supervisor.pid as number)).toBe(true);
});

test("without an IPC channel: no watchdog is started", async () => {
  const { child, line } = await run(service(path.join(dir, "stopped"), true));
  expect(Number(line)).toBe(child.pid);
  expect(childrenOf(child.pid as number)).toEqual([]);
});
