// A gateway started again while its previous process still holds its consumer-group membership
// (frozen here; killed without leaving is the same until its session lapses) serves HTTP at once:
// liveness 200, readiness 503 and its views as far as they were projected; ready once the group
// lets it in. It used to listen only after joining, refusing every connection meanwhile.
import { freePort } from "@rdm/embedded";
import { uniqueId, waitFor } from "@rdm/testkit";
import { e2eStack } from "./harness.js";

const stack = e2eStack("e2e-gateway-restart");
afterAll(() => stack.stop());

// Long enough that the second process is up well before the frozen one's membership lapses.
const SESSION_TIMEOUT_MS = "10000";

test("a restarted gateway answers its probes and views while its consumer group waits for the old member", async () => {
  const databaseUrl = await stack.database("gateway");
  const group = uniqueId("gateway-restart");
  const env = async (port: number) =>
    stack.env("gateway", {
      databaseUrl,
      port,
      group,
      env: {
        LOG_LEVEL: "error",
        GATEWAY_CONSUMER_SESSION_TIMEOUT_MS: SESSION_TIMEOUT_MS,
      },
    });
  const token = await stack.token("vera", ["viewer"]);
  const status = (port: number, path: string) =>
    fetch(`http://127.0.0.1:${port}${path}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(2_000),
    }).then(
      (response) => response.status,
      () => 0, // refused or no answer
    );
  const [firstPort, secondPort] = [await freePort(), await freePort()];

  const first = stack.spawnService("gateway", await env(firstPort));
  await waitFor(async () => (await status(firstPort, "/readyz")) === 200, {
    timeoutMs: 60_000,
    description: "the first gateway ready",
  });
  first.kill("SIGSTOP"); // still a member of the group until its session lapses

  stack.spawnService("gateway", await env(secondPort));
  await waitFor(async () => (await status(secondPort, "/healthz")) === 200, {
    timeoutMs: 30_000,
    description: "the second gateway answering",
  });
  const meanwhile = { ready: await status(secondPort, "/readyz"), releases: await status(secondPort, "/v1/releases") };
  first.kill("SIGKILL");
  expect(meanwhile).toEqual({ ready: 503, releases: 200 });
  await waitFor(async () => (await status(secondPort, "/readyz")) === 200, {
    timeoutMs: 60_000,
    description: "the second gateway ready once the first one's membership lapsed",
  });
});
