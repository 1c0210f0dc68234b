import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { freePort } from "../src/index.js";

describe("freePort", () => {
  it("gives a port below the ephemeral range (where port-0 binds cannot take it) that a server can bind", async () => {
    const [ephemeralStart] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    const port = await freePort();
    expect(port).toBeGreaterThanOrEqual(10_000);
    expect(port).toBeLessThan(ephemeralStart as number);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });

  it("never gives the same port twice in one process, though each was free again once probed", async () => {
    // 400 draws from a lane of about 1,400 ports: without the record, a repeat is all but certain.
    const ports: number[] = [];
    for (let i = 0; i < 400; i++) ports.push(await freePort());
    expect(new Set(ports).size).toBe(ports.length);
  });

  it("gives each Jest worker ports of its own lane, so test files running side by side never pick the same port", async () => {
    const worker = process.env.JEST_WORKER_ID;
    try {
      for (const id of ["1", "2", "7"]) {
        process.env.JEST_WORKER_ID = id;
        for (let i = 0; i < 20; i++) expect((await freePort()) % 16).toBe(Number(id));
      }
      delete process.env.JEST_WORKER_ID;
      for (let i = 0; i < 20; i++) expect((await freePort()) % 16).toBe(0);
    } finally {
      if (worker === undefined) delete process.env.JEST_WORKER_ID;
      else process.env.JEST_WORKER_ID = worker;
    }
  });
});
