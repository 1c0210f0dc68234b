import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/**
 * An operator's command as built (`script`, e.g. a package's dist/rebuild-main.js) on a database:
 * its stdout and stderr, or execFile's rejection (with its exit `code` and `stderr`).
 */
export const runBuiltCommand = (script: URL, databaseUrl: string) =>
  promisify(execFile)(process.execPath, [fileURLToPath(script)], {
    env: { ...process.env, DATABASE_URL: databaseUrl },
  });

/** Runs `step` again and again (at least once) while `running` is pending; then `running`'s outcome. */
export async function repeatWhilePending<T>(running: Promise<T>, step: () => Promise<void>): Promise<T> {
  let pending = true;
  const settled = () => {
    pending = false;
  };
  running.then(settled, settled);
  do await step();
  while (pending);
  return running;
}
