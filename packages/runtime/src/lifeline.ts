import { existsSync } from "node:fs";
import { Worker } from "node:worker_threads";

/**
 * Runs in a worker thread, so it works even when the main thread is stuck (e.g. in a log write
 * that retries forever once nobody reads the output): once the parent process is gone (the
 * process was re-parented), it gives the main thread `graceMs` to stop, then ends the process.
 */
const WATCHDOG = `
const { workerData } = require("node:worker_threads");
const { readFileSync } = require("node:fs");
const parentPid = () => {
  const stat = readFileSync("/proc/self/stat", "utf8");
  return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
};
const parent = parentPid();
const timer = setInterval(() => {
  if (parentPid() === parent) return;
  clearInterval(timer);
  setTimeout(() => process.kill(workerData.pid, "SIGKILL"), workerData.graceMs);
}, 500);
`;

/**
 * For a process started by a supervisor with an IPC channel (`./rdm up`): when the supervisor
 * dies, however it dies (SIGKILL included), the channel closes and `stop` runs; if the process is
 * still there `graceMs` later, it is killed. Without an IPC channel this does nothing.
 */
export function endWithSupervisor(stop: () => void, graceMs: number): void {
  // process.send exists only in a process started with an IPC channel, closed or not.
  if (typeof process.send !== "function") return;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    stop();
    setTimeout(() => process.exit(1), graceMs).unref();
  };
  // A supervisor killed while this process was starting closed the channel before anyone
  // listened: "disconnect" was already emitted.
  if (!process.connected) {
    end();
    return;
  }
  process.once("disconnect", end);
  // The channel only tells us when the supervisor goes; it must not keep this process alive.
  process.channel?.unref();
  if (existsSync("/proc/self/stat")) {
    new Worker(WATCHDOG, { eval: true, workerData: { pid: process.pid, graceMs } }).unref();
  }
}
