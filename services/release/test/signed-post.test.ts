// A webhook send that reaches no receiver says why (fetch's own message is only "fetch failed"),
// so a delivery's last_error and the log tell an operator what to mend.
import { createServer } from "node:net";
import { postSigned } from "../src/jobs/signed-post.js";

/** A loopback port nothing listens on: bound, then closed. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

test("a refused connection is recorded with its cause", async () => {
  const result = await postSigned({
    url: `http://127.0.0.1:${await closedPort()}/hook`,
    secret: undefined,
    notificationId: "n-1",
    body: "{}",
    now: new Date(),
    timeoutMs: 5_000,
  });
  expect(result).toEqual({ status: 0, failure: expect.stringMatching(/^fetch failed: .*ECONNREFUSED/) });
});
