import { spawn } from "node:child_process";

/** How a process ended, in a few words. */
export const howItEnded = (code: number | null, signal: string | null) =>
  signal ? `signal ${signal}` : `exit code ${code}`;

export interface LaunchedProcess<T> {
  /** What the launcher reported on its first stdout line. */
  info: T;
  pid: number;
  /** Settles when the launcher has ended, stopped or not, with the tail of its stderr. */
  exited: Promise<{ code: number | null; signal: string | null; stderr: string }>;
  stop(): Promise<void>;
}

/**
 * Runs a launcher script (a Node file that starts a server, prints one JSON line describing it,
 * and serves until SIGTERM or until its stdin closes) and resolves with that line.
 *
 * The child gets its own process group, so a Ctrl-C in the terminal reaches only the caller,
 * which can then stop its servers in order (services first, storage last). If the caller dies,
 * the child's stdin closes and it shuts down by itself.
 */
export function launch<T extends { error?: string }>(
  script: string,
  args: string[],
  { name, startTimeoutMs }: { name: string; startTimeoutMs: number },
): Promise<LaunchedProcess<T>> {
  const child = spawn(process.execPath, [script, ...args], { stdio: ["pipe", "pipe", "pipe"], detached: true });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4000);
  });
  const exited = new Promise<{ code: number | null; signal: string | null; stderr: string }>((resolve) =>
    // "close", not "exit": by then its stderr has been read to the end.
    child.once("close", (code, signal) => resolve({ code, signal, stderr })),
  );

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      // Keep this process alive until the launcher has really gone.
      child.ref();
      child.kill("SIGTERM");
    }
    await exited;
  };

  return new Promise<LaunchedProcess<T>>((resolve, reject) => {
    let stdout = "";
    const fail = (message: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${message}${stderr ? `\n${name} launcher stderr: ${stderr}` : ""}`));
    };
    const timer = setTimeout(() => fail(`${name} did not start within ${startTimeoutMs} ms`), startTimeoutMs);
    child.once("error", (err) => fail(`cannot run the ${name} launcher: ${err.message}`));
    const onEarlyExit = (code: number | null, signal: string | null) =>
      fail(`${name} launcher exited early (code ${code}, signal ${signal})`);
    child.once("exit", onEarlyExit);
    child.stdout.setEncoding("utf8");
    const onData = (chunk: string) => {
      stdout += chunk;
      const newline = stdout.indexOf("\n");
      if (newline < 0) return;
      child.stdout.off("data", onData);
      child.off("exit", onEarlyExit);
      let info: T;
      try {
        info = JSON.parse(stdout.slice(0, newline));
      } catch {
        return fail(`unexpected output from the ${name} launcher: ${stdout.slice(0, newline)}`);
      }
      if (info.error) return fail(info.error);
      clearTimeout(timer);
      // Do not keep this process alive for the server's sake: if we exit, the launcher's
      // stdin closes and it shuts down by itself.
      child.unref();
      for (const stream of [child.stdin, child.stdout, child.stderr]) {
        (stream as unknown as { unref?: () => void }).unref?.();
      }
      resolve({ info, pid: child.pid ?? -1, exited, stop });
    };
    child.stdout.on("data", onData);
  });
}
