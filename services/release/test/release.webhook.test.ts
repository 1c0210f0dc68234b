// Notifications reach a webhook receiver on loopback: signed with HMAC-SHA256, retried with
// backoff after a failure or no answer in time, given up (FAILED) after the last allowed attempt,
// and their delivery status recorded.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { waitFor } from "@rdm/testkit";
import { webhookSignature } from "../src/jobs/webhook-delivery.js";
import { type Harness, registration, startHarness } from "./harness.js";

const webhookSecret = "whsec-0123456789abcdef";
let h: Harness;
let server: Server;
let receiverUrl: string;
const received: {
  path: string;
  id: string;
  body: string;
  signatureValid: boolean;
  payload: Record<string, unknown>;
}[] = [];

beforeAll(async () => {
  const seen = new Set<string>();
  server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (c: Buffer) => chunks.push(c));
    request.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const id = String(request.headers["x-rdm-notification-id"]);
      const timestamp = String(request.headers["x-rdm-timestamp"]);
      const signatureValid = request.headers["x-rdm-signature"] === webhookSignature(webhookSecret, timestamp, body);
      const path = String(request.url);
      received.push({ path, id, body, signatureValid, payload: JSON.parse(body) });
      // /hooks/silent never answers.
      if (path === "/hooks/silent") return;
      // /hooks/flaky fails the first attempt of every notification, so each one is retried once;
      // /hooks/down never accepts anything.
      const first = !seen.has(id);
      seen.add(id);
      response.statusCode = path === "/hooks/flaky" && !first ? 204 : 503;
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  h = await startHarness({
    RELEASE_WEBHOOK_URL: `${receiverUrl}/hooks/flaky`,
    RELEASE_WEBHOOK_SECRET: webhookSecret,
    RELEASE_WEBHOOK_POLL_MS: "50",
    RELEASE_WEBHOOK_BACKOFF_MS: "30000",
  });
});

afterAll(async () => {
  await h?.stop();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

test("a notification is POSTed with a valid signature, retried after a failure and marked delivered", async () => {
  const manager = await h.client("rita", ["release-manager"]);
  const { release } = await manager.registerRelease(registration({ stakeholders: ["sre-payments", "finance"] }));
  const releaseId = release?.releaseId as string;

  const first = await waitFor(() => received.find((r) => r.payload.releaseId === releaseId), {
    description: "first delivery attempt",
  });
  expect(first.signatureValid).toBe(true);
  expect(first.payload).toMatchObject({
    releaseKey: release?.key,
    trigger: "rdm.release.v1.ReleaseRegistered",
    recipients: ["olivia", "carl", "sre-payments", "finance"],
    actor: "rita",
  });
  expect(webhookSignature("another-secret-xyz", "1", first.body)).not.toBe(
    webhookSignature(webhookSecret, "1", first.body),
  );

  const pending = await waitFor(async () => {
    const { deliveries } = await manager.listNotificationDeliveries({ releaseId });
    return deliveries[0]?.attempts === 1 ? deliveries[0] : undefined;
  });
  expect(pending).toMatchObject({ status: "PENDING", lastError: "HTTP 503" });

  // The retry is due after the backoff: move the service's clock instead of sleeping.
  h.clock.advance(30_000);
  const delivered = await waitFor(async () => {
    const { deliveries } = await manager.listNotificationDeliveries({ releaseId });
    return deliveries[0]?.status === "DELIVERED" ? deliveries[0] : undefined;
  });
  expect(delivered.attempts).toBe(2);
  const attempts = received.filter((r) => r.id === first.id);
  expect(attempts).toHaveLength(2);
  expect(attempts.every((a) => a.signatureValid)).toBe(true);
});

test("after the last allowed attempt the delivery is marked FAILED and never posted again", async () => {
  const down = await startHarness({
    RELEASE_WEBHOOK_URL: `${receiverUrl}/hooks/down`,
    RELEASE_WEBHOOK_SECRET: webhookSecret,
    RELEASE_WEBHOOK_POLL_MS: "50",
    RELEASE_WEBHOOK_BACKOFF_MS: "30000",
    RELEASE_WEBHOOK_MAX_ATTEMPTS: "3",
  });
  try {
    const manager = await down.client("rita", ["release-manager"]);
    const { release } = await manager.registerRelease(registration());
    const releaseId = release?.releaseId as string;
    const delivery = (attempts: number) =>
      waitFor(
        async () => {
          const [first] = (await manager.listNotificationDeliveries({ releaseId })).deliveries;
          return first?.attempts === attempts ? first : undefined;
        },
        { description: `delivery attempt ${attempts}` },
      );

    // The backoff doubles: 30 s after the first failure, 60 s after the second.
    expect(await delivery(1)).toMatchObject({ status: "PENDING", lastError: "HTTP 503" });
    down.clock.advance(30_000);
    expect(await delivery(2)).toMatchObject({ status: "PENDING", lastError: "HTTP 503" });
    down.clock.advance(60_000);
    const failed = await delivery(3);
    expect(failed).toMatchObject({ status: "FAILED", lastError: "HTTP 503" });
    expect(failed.deliveredAt).toBeUndefined();

    // Long past any backoff, a later notification is attempted: the poller ran again, and it left
    // the failed delivery alone.
    down.clock.advance(24 * 3600_000);
    const { release: later } = await manager.registerRelease(registration({ title: "Payments 4.3" }));
    await waitFor(
      async () => {
        const { deliveries } = await manager.listNotificationDeliveries({ releaseId: later?.releaseId as string });
        return deliveries[0]?.attempts === 1;
      },
      { description: "the later notification's first attempt" },
    );
    const [after] = (await manager.listNotificationDeliveries({ releaseId })).deliveries;
    expect(after).toMatchObject({ status: "FAILED", attempts: 3 });
    expect(received.filter((r) => r.payload.releaseId === releaseId).map((r) => r.path)).toEqual([
      "/hooks/down",
      "/hooks/down",
      "/hooks/down",
    ]);
  } finally {
    await down.stop();
  }
});

test("a target that does not answer within RELEASE_WEBHOOK_TIMEOUT_MS: the attempt fails, the delivery waits for its retry", async () => {
  const silent = await startHarness({
    RELEASE_WEBHOOK_URL: `${receiverUrl}/hooks/silent`,
    RELEASE_WEBHOOK_SECRET: webhookSecret,
    RELEASE_WEBHOOK_POLL_MS: "50",
    RELEASE_WEBHOOK_BACKOFF_MS: "30000",
    RELEASE_WEBHOOK_TIMEOUT_MS: "300",
  });
  try {
    const manager = await silent.client("rita", ["release-manager"]);
    const { release } = await manager.registerRelease(registration());
    const releaseId = release?.releaseId as string;
    const failed = await waitFor(
      async () => {
        const [first] = (await manager.listNotificationDeliveries({ releaseId })).deliveries;
        return first?.attempts === 1 ? first : undefined;
      },
      { timeoutMs: 30_000, description: "the first attempt recorded" },
    );
    expect(failed).toMatchObject({ status: "PENDING", lastError: "no answer within 300 ms" });
    expect(received.filter((r) => r.payload.releaseId === releaseId).map((r) => r.path)).toEqual(["/hooks/silent"]);
  } finally {
    await silent.stop();
  }
});
