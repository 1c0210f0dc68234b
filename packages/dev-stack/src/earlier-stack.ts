import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";

// A stack whose supervisor died without stopping it (kill -9, a crash) leaves its children to
// stop by themselves (their lifeline, @rdm/runtime), which takes up to their 30 s stop bound,
// while they hold their ports. A start meanwhile would find the ports taken: it waits for them.

/** A process's parent and its arguments resolved against its working folder (relative ones too). */
function processInfo(procRoot: string, pid: number): { parent: number; args: string[] } | undefined {
  try {
    const dir = path.join(procRoot, String(pid));
    const parent = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(path.join(dir, "status"), "utf8"))?.[1]);
    const cwd = readlinkSync(path.join(dir, "cwd"));
    const args = readFileSync(path.join(dir, "cmdline"), "utf8").split("\0").filter(Boolean).slice(1);
    return { parent, args: args.map((arg) => path.resolve(cwd, arg)) };
  } catch {
    return undefined; // gone meanwhile, or not ours to read
  }
}

/**
 * The processes running a script of `root`'s services or of its embedded servers' launchers (what
 * holds a stack's ports) that were re-parented to init (PID 1): their supervisor is gone. One
 * started by a live supervisor, a test runner or a shell is not one of them, nor a supervisor
 * itself (left to init when the shell that started it in the background ended). Without /proc: none.
 */
export function orphansOf(root: string, procRoot = "/proc"): number[] {
  let names: string[];
  try {
    names = readdirSync(procRoot);
  } catch {
    return [];
  }
  const scripts = ["services", "packages/embedded"].map((dir) => `${path.join(root, dir)}${path.sep}`);
  return names
    .filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid)
    .map(Number)
    .filter((pid) => {
      const info = processInfo(procRoot, pid);
      return info?.parent === 1 && info.args.some((arg) => scripts.some((dir) => arg.startsWith(dir)));
    });
}
