// Notifications reach a webhook receiver on loopback: signed with HMAC-SHA256, retried with
// backoff after a failure, and their delivery status recorded.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { waitFor } from "@rdm/testkit";
import { webhookSignature } from "../src/jobs/webhook-delivery.js";
import { type Harness, registration, startHarness } from "./harness.js";

const webhookSecret = "whsec-0123456789abcdef";
let h: Harness;
let server: Server;
const received: { id: string; body: string; signatureValid: boolean; payload: Record<string, unknown> }[] = [];

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
      received.push({ id, body, signatureValid, payload: JSON.parse(body) });
      // The first attempt of every notification fails, so each one is retried once.
      const first = !seen.has(id);
      seen.add(id);
      response.statusCode = first ? 503 : 204;
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  h = await startHarness({
    RELEASE_WEBHOOK_URL: `http://127.0.0.1:${port}/hooks/rdm`,
    RELEASE_WEBHOOK_SECRET: webhookSecret,
    RELEASE_WEBHOOK_POLL_MS: "50",
    RELEASE_WEBHOOK_BACKOFF_MS: "30000",
  });
});

afterAll(async () => {
  await h?.stop();
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
