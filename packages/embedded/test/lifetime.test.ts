import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const distIndex = fileURLToPath(new URL("../dist/index.js", import.meta.url));

function portAccepts(hostPort: string): Promise<boolean> {
  const [host, port] = hostPort.split(":");
  return new Promise((resolve) => {
    const socket = connect({ host: host as string, port: Number(port) });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("server lifetime", () => {
  it("a process that starts both servers and never stops them still exits, and takes them down", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "rdm-embedded-life-"));
    const cleanUp = [root];
    try {
      const script = `
        const { startEmbeddedPostgres, startMockKafka, freePort } = await import(${JSON.stringify(distIndex)});
        const pg = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(path.join(root, "pg"))}, port: await freePort() });
        const kafka = await startMockKafka();
        console.log(JSON.stringify({ pg: new URL(pg.adminUrl).host, pgData: pg.dataDir, kafka: kafka.bootstrapServers[0] }));
      `;
      const stdout = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ["--input-type=module", "-e", script], { timeout: 60_000 }, (err, out, errOut) =>
          err ? reject(new Error(`${err.message}\n${errOut}`)) : resolve(out),
        );
      });
      const { pg, pgData, kafka } = JSON.parse(stdout.trim().split("\n").pop() as string) as {
        pg: string;
        pgData: string;
        kafka: string;
      };
      cleanUp.push(pgData);
      // Down within milliseconds of the exit here; the bound is for a loaded machine.
      await eventually(async () => !(await portAccepts(pg)), 30_000, "PostgreSQL to stop");
      await eventually(async () => !(await portAccepts(kafka)), 30_000, "the mock Kafka cluster to stop");
    } finally {
      for (const dir of cleanUp) await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
