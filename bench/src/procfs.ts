// Every process as Linux's /proc shows it, for the benches' CPU and memory figures.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** One process: its parent, program, command line, CPU in clock ticks and memory in kB. */
export interface Proc {
  pid: number;
  ppid: number;
  /** The program's name (a process may rewrite its argv, as PostgreSQL's do). */
  comm: string;
  argv: string[];
  /** utime + stime: the process's own CPU. */
  ticks: number;
  /** cutime + cstime: the CPU of its children that ended and were reaped. */
  childTicks: number;
  rssKb: number;
  /** Peak RSS (VmHWM). */
  hwmKb: number;
}

/** Linux's USER_HZ, the unit of /proc/<pid>/stat's times. */
export const TICKS_PER_SECOND = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;

const kb = (status: string, field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);

/** Process `pid` as /proc shows it now; undefined once it has ended. */
export function processOf(pid: number): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const close = stat.lastIndexOf(")");
    // The fields after the command name (which may hold spaces): state is field 3.
    const f = stat.slice(close + 2).split(" ");
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return {
      pid,
      ppid: Number(f[1]),
      comm: stat.slice(stat.indexOf("(") + 1, close),
      argv: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean),
      ticks: Number(f[11]) + Number(f[12]),
      childTicks: Number(f[13]) + Number(f[14]),
      rssKb: kb(status, "VmRSS"),
      hwmKb: kb(status, "VmHWM"),
    };
  } catch {
    return undefined; // ended meanwhile
  }
}

/** Every process readable now. */
export const allProcesses = (): Proc[] =>
  readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map((entry) => processOf(Number(entry)))
    .filter((p): p is Proc => p !== undefined);

/** The processes below `pid` in `all`, each before its own children. */
export function below(all: readonly Proc[], pid: number): Proc[] {
  return all.filter((p) => p.ppid === pid).flatMap((child) => [child, ...below(all, child.pid)]);
}

export const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");

const mb = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;

/** `label: RSS … now, peak …` of a process, for the line each bench prints at its end. */
export const memoryLine = (label: string, rssKb: number, peakKb: number) =>
  `${label}: RSS ${mb(rssKb)} at the end, peak ${mb(peakKb)}`;
