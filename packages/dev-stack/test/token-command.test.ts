// `./rdm token`: a token for a subject the services take, signed with the data folder's secret;
// none for a subject every service would refuse.
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createTokenVerifier } from "@rdm/auth";

const run = promisify(execFile);
const tokenCommand = fileURLToPath(new URL("../dist/token.js", import.meta.url));
const secret = "s".repeat(48);
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "rdm-token-"));
  await writeFile(path.join(dataDir, "dev-jwt-secret"), secret);
});
afterAll(() => rm(dataDir, { recursive: true, force: true }));

async function token(...args: string[]) {
  try {
    const { stdout } = await run(process.execPath, [tokenCommand, ...args], {
      env: { ...process.env, RDM_DATA_DIR: dataDir },
    });
    return { status: 0, out: stdout.trim() };
  } catch (error) {
    const failed = error as { code: number; stderr: string };
    return { status: failed.code, out: failed.stderr.trim() };
  }
}

test("a token the services verify, with its roles and groups", async () => {
  const { status, out } = await token("ann", "approver", "--groups", "cab");
  expect(status).toBe(0);
  const verifier = createTokenVerifier({ secret, issuer: "rdm", audience: "rdm" });
  expect(await verifier.verify(out)).toMatchObject({ subject: "ann", roles: ["approver"], groups: ["cab"] });
});

test.each([
  ["over 200 characters", "a".repeat(201), "subject: it must be at most 200 characters"],
  ["with a control character", "a\tb", "subject: it must be well-formed text without control characters"],
  ["blank", " ", "subject: it must be a non-empty string"],
])("no token for a subject %s: every service would refuse it", async (_, subject, message) => {
  const { status, out } = await token(subject, "viewer");
  expect([status, out.split("\n")[0]]).toEqual([2, message]);
});
