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
});
