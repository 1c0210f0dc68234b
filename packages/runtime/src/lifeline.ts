import { spawn } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * A POSIX shell loop beside the process (its child: 3.4 MB of RSS with its `sleep`, nearly all
 * shared C library pages, where a worker thread's V8 isolate costs 10 MB), so it works even when the process's main thread is stuck (e.g. in a log write that
 * retries forever once nobody reads the output): once the process's parent is no longer the
 * supervisor (it was re-parented), it gives the process `grace` seconds to stop, then kills it.
 * It ends by itself once the process is gone, being re-parented in turn.
 * Arguments: the process's pid, its supervisor's pid (0: already gone), the grace in seconds.
 */
const WATCHDOG = `
service=$1 supervisor=$2 grace=$3
parent_of() {
  parent=
  [ -r "/proc/$1/status" ] || return 1
  while read -r key value; do
    if [ "$key" = PPid: ]; then parent=$value; return 0; fi
  done < "/proc/$1/status"
  return 1
}
with_service() { parent_of $$ && [ "$parent" = "$service" ]; }
while sleep 1; do
  with_service || exit 0
  parent_of "$service" && [ "$parent" = "$supervisor" ] || break
done
sleep "$grace"
with_service && kill -KILL "$service"
`;

function startWatchdog(supervisorPid: number, graceMs: number): void {
  if (!existsSync("/proc/self/status") || !existsSync("/bin/sh")) return;
  const args = [String(process.pid), String(supervisorPid), String(Math.ceil(graceMs / 1000))];
  // A session of its own: a Ctrl-C in the terminal stops the stack in order and must not end it.
  const watchdog = spawn("/bin/sh", ["-c", WATCHDOG, "rdm-watchdog", ...args], { stdio: "ignore", detached: true });
  // It backs up the IPC channel, which still ends the process when the shell cannot run.
  watchdog.on("error", () => {});
  watchdog.unref();
}

/**
 * For a process started by a supervisor with an IPC channel (`./rdm up`): when the supervisor
 * dies, however it dies (SIGKILL included), the channel closes and `stop` runs; if the process is
 * still there `graceMs` later, it is killed, even with its main thread stuck. Without an IPC
 * channel this does nothing.
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
    startWatchdog(0, graceMs);
    end();
    return;
  }
  process.once("disconnect", end);
  // The channel only tells us when the supervisor goes; it must not keep this process alive.
  process.channel?.unref();
  startWatchdog(process.ppid, graceMs);
}
