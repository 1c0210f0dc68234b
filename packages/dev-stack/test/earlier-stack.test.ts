// Which processes a start waits for, on a made-up /proc: those running a script of this folder's
// services or embedded servers' launchers that were re-parented to init.
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { orphansOf } from "../src/earlier-stack.js";

let proc: string;
const root = "/home/dev/rdm";

async function fakeProcess(pid: number, parent: number, cwd: string, args: string[]) {
  const dir = path.join(proc, String(pid));
  await mkdir(dir);
  await writeFile(path.join(dir, "status"), `Name:\tnode\nPid:\t${pid}\nPPid:\t${parent}\n`);
  await symlink(cwd, path.join(dir, "cwd"));
  await writeFile(path.join(dir, "cmdline"), `${args.join("\0")}\0`);
}

beforeAll(async () => {
  proc = await mkdtemp(path.join(tmpdir(), "rdm-proc-"));
  const node = "/usr/bin/node";
  // A killed stack's service and launcher, the second started with a path relative to the folder.
  await fakeProcess(101, 1, "/", [node, "--max-semi-space-size=2", `${root}/services/release/dist/main.js`]);
  await fakeProcess(102, 1, root, [node, "packages/embedded/dist/launcher.js"]);
  // Live stacks: a supervisor started from a shell and its service, one left to init by its shell.
  await fakeProcess(200, 50, root, [node, "packages/dev-stack/dist/main.js"]);
  await fakeProcess(202, 1, root, [node, "packages/dev-stack/dist/main.js"]);
  await fakeProcess(201, 200, "/", [node, `${root}/services/change/dist/main.js`]);
  // Re-parented to init, but not this folder's services or packages: another clone's, a test worker.
  await fakeProcess(300, 1, "/", [node, "/home/dev/other/services/release/dist/main.js"]);
  await fakeProcess(301, 1, root, [node, "node_modules/jest-worker/build/processChild.js"]);
  await mkdir(path.join(proc, "400")); // gone while being read
  await mkdir(path.join(proc, "self"));
});

afterAll(() => rm(proc, { recursive: true, force: true }));

test("an earlier stack's processes re-parented to init are found, whatever their working folder", () => {
  expect(orphansOf(root, proc).sort()).toEqual([101, 102]);
});

test("without /proc there is nothing to wait for", () => {
  expect(orphansOf(root, path.join(proc, "missing"))).toEqual([]);
});
