// Idle memory of each process as `./rdm up` runs them: embedded PostgreSQL, the mock Kafka
// cluster, the four gRPC services and the gateway, each its own Node process with the flags the
// dev stack gives it. Waits until every one serves, lets them idle, prints each one's RSS.
//   node bench/dist/idle-memory.js   (IDLE_SECONDS=30; NODE_FLAGS as ./rdm up: "--enable-source-maps --max-semi-space-size=4")
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ensureDatabase, freePort, startEmbeddedPostgresProcess, startMockKafka } from "@rdm/embedded";

const root = path.resolve(fileURLToPath(new URL("../..", import.meta.url)));
const idleMs = Number(process.env.IDLE_SECONDS ?? 30) * 1000;
const nodeFlags = (process.env.NODE_FLAGS ?? "--enable-source-maps --max-semi-space-size=4").split(" ").filter(Boolean);
const names = ["release", "change", "configuration", "deployment", "gateway"] as const;

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;

function serving(name: string, port: number): Promise<boolean> {
  if (name === "gateway")
    return fetch(`http://127.0.0.1:${port}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.end();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function main() {
  const postgres = await startEmbeddedPostgresProcess({
    dataDir: path.join(mkdtempSync(path.join(tmpdir(), "rdm-idle-")), "postgres"),
    port: await freePort(),
  });
  const kafka = await startMockKafka({
    topics: ["release", "change", "configuration", "deployment"].map((s) => ({
      name: `rdm.${s}.events.v1`,
      partitions: 4,
    })),
  });
  const children: { name: string; port: number; child: ChildProcess }[] = [];
  try {
    const secret = randomBytes(32).toString("hex");
    const ports = new Map<string, number>();
    for (const name of names) ports.set(name, await freePort());
    for (const name of names) {
      const port = ports.get(name) as number;
      const child = spawn(process.execPath, [...nodeFlags, path.join(root, "services", name, "dist/main.js")], {
        env: {
          ...process.env,
          DATABASE_URL: await ensureDatabase(postgres.adminUrl, `rdm_${name}`),
          KAFKA_BROKERS: kafka.bootstrapServers.join(","),
          AUTH_JWT_SECRET: secret,
          ...(name === "gateway" ? { HTTP_PORT: String(port) } : { GRPC_PORT: String(port) }),
          METRICS_PORT: String(await freePort()),
          RELEASE_GRPC_URL: `127.0.0.1:${ports.get("release")}`,
          LOG_LEVEL: "warn",
        },
        stdio: ["ignore", "ignore", "inherit"],
      });
      children.push({ name, port, child });
    }
    const started = Date.now();
    for (const { name, port, child } of children) {
      while (!(await serving(name, port))) {
        if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}`);
        if (Date.now() - started > 600_000) throw new Error(`${name} not serving after 10 minutes`);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    console.log(`all serving after ${Math.round((Date.now() - started) / 1000)} s; idle for ${idleMs / 1000} s`);
    console.log(`node flags: ${nodeFlags.join(" ") || "(none)"}`);
    await new Promise((resolve) => setTimeout(resolve, idleMs));
    let total = 0;
    for (const { name, child } of children) {
      const rss = rssMb(child.pid as number);
      total += rss;
      console.log(`${name.padEnd(14)} ${rss.toFixed(0)} MB`);
    }
    console.log(`${"total".padEnd(14)} ${total.toFixed(0)} MB`);
  } finally {
    await Promise.all(
      children.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null) return resolve();
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
            setTimeout(() => child.kill("SIGKILL"), 10_000).unref();
          }),
      ),
    );
    await kafka.stop();
    await postgres.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
