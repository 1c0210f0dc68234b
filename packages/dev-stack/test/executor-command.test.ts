// The command `./rdm up`'s reference executor runs per target: every step passes, except a
// VERIFY step of a package holding a version that ends in `-fails-verification`.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { EXECUTOR_COMMAND } from "../src/deployment-defaults.js";

const run = promisify(execFile);

/** The command's exit status and output for one target, given the step the executor claimed. */
async function perform(stepKind: string, versions: string[]) {
  const artifacts = versions.map((version, i) => ({ artifactId: `a${i}`, name: `app-${i}`, version }));
  const env = {
    ...process.env,
    RDM_STEP_KIND: stepKind,
    RDM_ARTIFACTS: JSON.stringify(artifacts),
    RDM_TARGET: "prod-app-1",
    RDM_ENVIRONMENT: "production",
  };
  try {
    const { stdout } = await run("/bin/sh", ["-c", EXECUTOR_COMMAND], { env });
    return { status: 0, stdout };
  } catch (error) {
    const failed = error as { code: number; stdout: string };
    return { status: failed.code, stdout: failed.stdout };
  }
}

test("every step of an ordinary package passes and says what it would deploy where", async () => {
  for (const kind of ["DEPLOY", "VERIFY", "SWITCH"]) {
    const { status, stdout } = await perform(kind, ["4.2.0"]);
    expect(status).toBe(0);
    expect(stdout).toContain(
      `${kind} [{"artifactId":"a0","name":"app-0","version":"4.2.0"}] to prod-app-1 in production`,
    );
  }
});

test("a VERIFY step fails when an artifact's version ends in -fails-verification", async () => {
  const failed = await perform("VERIFY", ["1.0.0", "4.3.0-fails-verification"]);
  expect(failed).toEqual({ status: 1, stdout: "verification failed on prod-app-1: error rate above threshold\n" });
  // Only the verification fails; the version must end with the switch.
  expect((await perform("DEPLOY", ["4.3.0-fails-verification"])).status).toBe(0);
  expect((await perform("VERIFY", ["4.3.0-fails-verification.1"])).status).toBe(0);
});
