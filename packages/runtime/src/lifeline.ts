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
  if (!process.channel) return;
  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    stop();
    setTimeout(() => process.exit(1), graceMs).unref();
  };
  process.once("disconnect", end);
  // The channel only tells us when the supervisor goes; it must not keep this process alive.
  process.channel.unref();
  // The channel's close has been seen to go unnoticed by a process with calls open to services
  // that ended with the supervisor: the main thread also watches its parent.
  const supervisor = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === supervisor) return;
    clearInterval(watch);
    end();
  }, 500).unref();
  if (existsSync("/proc/self/stat")) {
    new Worker(WATCHDOG, { eval: true, workerData: { pid: process.pid, graceMs } }).unref();
  }
}
