// `./rdm up`'s supervisor (dist/main.js) run as a process: once up, the default environments are
// registered and the reference executor runs; its children end when it is killed with SIGKILL
// (and a start meanwhile waits for them), PostgreSQL or a service killed under it is started again, Ctrl-C stops everything, and a port in
// use stops it before anything starts, with a clear message.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { mintDevToken } from "@rdm/auth";
import { freePort } from "@rdm/embedded";
import { createGrpcClient } from "@rdm/grpc";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import pg from "pg";

const supervisor = fileURLToPath(new URL("../dist/main.js", import.meta.url));
const PORT_VARIABLES = [
  "RELEASE_GRPC_PORT",
  "CHANGE_GRPC_PORT",
  "CONFIGURATION_GRPC_PORT",
  "DEPLOYMENT_GRPC_PORT",
  "GATEWAY_HTTP_PORT",
  "RDM_POSTGRES_PORT",
];
// Free ones too, so another stack on this machine (on the defaults) cannot fail the start.
const METRICS_PORT_VARIABLES = ["RELEASE", "CHANGE", "CONFIGURATION", "DEPLOYMENT", "GATEWAY"].map(
  (name) => `${name}_METRICS_PORT`,
);

async function stackEnv(dataDir: string): Promise<Record<string, string>> {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), RDM_DATA_DIR: dataDir };
  for (const variable of [...PORT_VARIABLES, ...METRICS_PORT_VARIABLES]) env[variable] = String(await freePort());
  return env;
}

/** Every process below `pid` (by parent pid, from /proc). */
/** A process's command line; empty once it ended (the watchdogs' `sleep`s come and go). */
function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // Field 4 of /proc/<pid>/stat is the parent pid; the command name before it may hold spaces.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parents.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // ended meanwhile
    }
  }
  const found: number[] = [];
  const walk = (parent: number) => {
    for (const [child, ppid] of parents) {
      if (ppid === parent) {
        found.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return found;
}

const running = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });

async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const started: ChildProcess[] = [];
afterAll(() => {
  for (const child of started) child.kill("SIGKILL");
});

/** A viewer's token signed with the stack's own secret. */
const viewerToken = (dataDir: string) =>
  mintDevToken({
    subject: "vera",
    roles: ["viewer"],
    secret: readFileSync(path.join(dataDir, "dev-jwt-secret"), "utf8").trim(),
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "5m",
  });

/** The deployment service's environments, asked as a viewer. */
async function listEnvironments(dataDir: string, port: number) {
  const token = await viewerToken(dataDir);
  const client = createGrpcClient(DeploymentService, `127.0.0.1:${port}`, { token });
  try {
    return (await client.listEnvironments({})).environments;
  } finally {
    client.close();
  }
}

/** The names the configuration service gives these CIs (undefined: no such CI). */
async function ciNames(dataDir: string, port: number, ciIds: string[]) {
  const token = await viewerToken(dataDir);
  const client = createGrpcClient(ConfigurationService, `127.0.0.1:${port}`, { token });
  try {
    return await Promise.all(
      ciIds.map((ciId) =>
        client.getConfigurationItem({ ciId }).then(
          ({ item }) => item?.name,
          () => undefined,
        ),
      ),
    );
  } finally {
    client.close();
  }
}

test("up: default environments and a running executor; kill -9 of the supervisor ends every child, and a start at once waits for them; a restart registers nothing twice, and with RDM_FRESH_VIEWS=1 builds the gateway's views anew; PostgreSQL or a service killed is started again; Ctrl-C stops all", async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), "rdm-supervisor-"));
  let output = "";
  try {
    const env = await stackEnv(dataDir);
    const up = async (extra: Record<string, string> = {}) => {
      const stack = spawn(process.execPath, [supervisor], {
        env: { ...env, ...extra },
        stdio: ["ignore", "pipe", "pipe"],
      });
      started.push(stack);
      let own = "";
      for (const stream of [stack.stdout, stack.stderr]) {
        stream.on("data", (chunk) => {
          own += chunk;
          output += chunk;
        });
      }
      await eventually(
        () => own.includes("Ctrl-C stops everything") || stack.exitCode !== null,
        240_000,
        "the stack to be up",
      );
      if (stack.exitCode !== null) throw new Error(`the stack exited (${stack.exitCode}):\n${own.slice(-3000)}`);
      return stack;
    };
    const stack = await up();
    const children = descendants(stack.pid as number);
    // Four services, the gateway, the executor, the two launchers and PostgreSQL's own processes at least.
    expect(children.length).toBeGreaterThanOrEqual(9);
    const executor = children.filter((pid) => commandLine(pid).includes("deployment/dist/executor/cli.js"));
    expect(executor).toHaveLength(1);
    const environments = await listEnvironments(dataDir, Number(env.DEPLOYMENT_GRPC_PORT));
    expect(environments.map(({ name, promotesFrom }) => [name, promotesFrom])).toEqual([
      ["dev", ""],
      ["test", "dev"],
      ["staging", "test"],
      ["production", "staging"],
    ]);
    // Their targets are hosts of the CMDB.
    const targets = environments.flatMap((e) => e.targetGroups.flatMap((group) => group.ciIds));
    expect(await ciNames(dataDir, Number(env.CONFIGURATION_GRPC_PORT), targets)).toEqual([
      "dev-app-1",
      "test-app-1",
      "staging-app-1",
      "staging-app-2",
      "prod-app-1",
      "prod-app-2",
      "prod-app-3",
    ]);
    const ports = PORT_VARIABLES.map((variable) => Number(env[variable]));
    expect(await Promise.all(ports.map(accepts))).toEqual(ports.map(() => true));

    // Something in the gateway's database that no event put there: gone after a start with
    // RDM_FRESH_VIEWS=1 (the second start below), whose gateway builds its views anew.
    const gatewayDb = new pg.Client({
      connectionString: `postgres://postgres:postgres@127.0.0.1:${env.RDM_POSTGRES_PORT}/rdm_gateway`,
    });
    await gatewayDb.connect();
    await gatewayDb.query("CREATE TABLE left_from_before (n int)");
    await gatewayDb.end();

    stack.kill("SIGKILL");
    // Its children stop by themselves (a service's stop is bounded, 30 s in runMain, even when its
    // database and broker go at once). A start at once waits for them, rather than stop at the
    // ports they still hold, then starts on the same data: the defaults record nothing new.
    expect(children.filter(running).length).toBeGreaterThan(0);
    const again = await up({ RDM_FRESH_VIEWS: "1" });
    expect(output).toContain("waiting for an earlier stack's processes from this folder to stop");
    // What may outlive the wait holds no port: a service's watchdog shell, ending within its second,
    // or a service past closing its ports, within its stop's 30 s bound (a loaded machine takes it).
    await eventually(() => children.every((pid) => !running(pid)), 35_000, "every child to end").catch((error) => {
      const left = children.filter(running).map(commandLine);
      throw new Error(`${error.message}; still running: ${left.join("; ")}`);
    });
    const after = await listEnvironments(dataDir, Number(env.DEPLOYMENT_GRPC_PORT));
    expect(after).toEqual(environments);
    // The gateway's database is new, and its views are built from the events published again.
    const freshDb = new pg.Client({
      connectionString: `postgres://postgres:postgres@127.0.0.1:${env.RDM_POSTGRES_PORT}/rdm_gateway`,
    });
    await freshDb.connect();
    try {
      expect((await freshDb.query("SELECT to_regclass('left_from_before') AS t")).rows).toEqual([{ t: null }]);
    } finally {
      await freshDb.end();
    }
    const viewer = await viewerToken(dataDir);
    await eventually(
      async () => {
        const response = await fetch(`http://127.0.0.1:${env.GATEWAY_HTTP_PORT}/v1/environments`, {
          headers: { authorization: `Bearer ${viewer}` },
        }).catch(() => undefined);
        if (response?.status !== 200) return false;
        const { environments: listed } = (await response.json()) as { environments: { environment: string }[] };
        return listed.map((e) => e.environment).join() === "dev,test,staging,production";
      },
      60_000,
      "the gateway's fresh views to list the environments",
    );

    /** Waits until the deployment service lists the four environments again. */
    const environmentsListed = (what: string) =>
      eventually(
        () =>
          listEnvironments(dataDir, Number(env.DEPLOYMENT_GRPC_PORT)).then(
            (found) => found.length === 4,
            () => false,
          ),
        60_000,
        what,
      );

    // PostgreSQL killed under the stack: it is started again on the same data, the services
    // answer from it again, and Ctrl-C still stops everything.
    const postmaster = descendants(again.pid as number).filter((pid) => commandLine(pid).split("\0").includes("-D"));
    expect(postmaster).toHaveLength(1);
    process.kill(postmaster[0] as number, "SIGKILL");
    await eventually(
      () => output.includes("PostgreSQL is back") || again.exitCode !== null,
      120_000,
      "PostgreSQL back",
    );
    expect(output).toContain("PostgreSQL ended by itself (signal SIGKILL)");
    await environmentsListed("the deployment service to answer from the restarted PostgreSQL");
    // A service killed under the stack is started again and answers again.
    const [deployment] = descendants(again.pid as number).filter((pid) =>
      commandLine(pid).includes("services/deployment/dist/main.js"),
    );
    process.kill(deployment as number, "SIGKILL");
    await eventually(() => output.includes("deployment exited (signal SIGKILL); starting it again"), 30_000, "restart");
    await environmentsListed("the restarted deployment service to answer");
    expect(running(deployment as number)).toBe(false);

    const second = descendants(again.pid as number);
    const exited = new Promise<number | null>((resolve) => again.once("exit", (code) => resolve(code)));
    again.kill("SIGINT");
    expect(await exited).toBe(0);
    expect(output).toMatch(/stopped\n?$/);
    await eventually(() => second.every((pid) => !running(pid)), 60_000, "every child of the second start to end");
  } finally {
    await rm(dataDir, { recursive: true, force: true });
    // As root, PostgreSQL's data may live outside dataDir (see @rdm/embedded): the start names it.
    const elsewhere = /PostgreSQL data in (\S+)/.exec(output)?.[1];
    if (elsewhere && !elsewhere.startsWith(dataDir)) await rm(elsewhere, { recursive: true, force: true });
  }
}, 600_000);

test("a port in use: the supervisor names it and its variable, starts nothing, prints no stack trace", async () => {
  const dataDir = await mkdtemp(path.join(tmpdir(), "rdm-supervisor-"));
  const blocker = createServer();
  try {
    const env = await stackEnv(dataDir);
    const port = Number(env.CHANGE_GRPC_PORT);
    await new Promise<void>((resolve) => blocker.listen(port, "127.0.0.1", resolve));
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = execFile(process.execPath, [supervisor], { env, timeout: 30_000 }, (_error, stdout, stderr) =>
        resolve({ code: child.exitCode, output: stdout + stderr }),
      );
    });
    expect(result.code).toBe(1);
    expect(result.output).toContain(`port ${port} (change) is already in use`);
    expect(result.output).toContain("set CHANGE_GRPC_PORT");
    expect(result.output).not.toMatch(/^\s+at /m);
    expect(result.output).not.toContain("starting PostgreSQL");
    expect(existsSync(path.join(dataDir, "postgres"))).toBe(false);
  } finally {
    blocker.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}, 60_000);
