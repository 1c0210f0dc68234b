// Notifications requested while RELEASE_WEBHOOK_URL is unset: recorded SKIPPED, as a paused
// subscription skips what it missed, and never sent once a webhook is configured.
import { waitFor } from "@rdm/testkit";
import { type Harness, type ReleaseClient, registration, startHarness } from "./harness.js";
import { type Received, startReceiver } from "./notification-receiver.js";

let h: Harness;
let manager: ReleaseClient;

beforeAll(async () => {
  h = await startHarness(); // no RELEASE_WEBHOOK_URL
  manager = await h.client("rita", ["release-manager"]);
});
afterAll(() => h?.stop());

/** The default webhook's payload names the release at its top (not the subscriptions' payload). */
const releaseOf = (received: Received) => (received.payload as unknown as { releaseId?: string }).releaseId;

const deliveriesOf = async (releaseId: string) =>
  (await manager.listNotificationDeliveries({ releaseId })).deliveries.map((d) => [d.trigger, d.status]);

test("a notification requested with no webhook is SKIPPED and not sent when one is configured later", async () => {
  const before = (await manager.registerRelease(registration({ title: "before the webhook" }))).release?.releaseId;
  expect(await deliveriesOf(before as string)).toEqual([["rdm.release.v1.ReleaseRegistered", "SKIPPED"]]);

  const receiver = await startReceiver();
  try {
    // The service restarted with a webhook configured.
    await h.instances[0]?.stop();
    const withWebhook = await h.startInstance({
      RELEASE_WEBHOOK_URL: `${receiver.url}/hooks/ok`,
      RELEASE_WEBHOOK_SECRET: "whsec-0123456789abcdef",
      RELEASE_WEBHOOK_POLL_MS: "50",
    });
    const client = await h.client("rita", ["release-manager"], { instance: withWebhook });
    const after = (await client.registerRelease(registration({ title: "after the webhook" }))).release?.releaseId;
    // Deliveries go oldest first: had the skipped one been pending, it would have gone before.
    await waitFor(() => receiver.received.some((r) => releaseOf(r) === after), {
      timeoutMs: 15_000,
      description: "the new notification delivered",
    });
    expect(receiver.received.map(releaseOf)).toEqual([after]);
    const skipped = await client.listNotificationDeliveries({ releaseId: before as string });
    expect(skipped.deliveries.map((d) => d.status)).toEqual(["SKIPPED"]);
  } finally {
    await receiver.close();
  }
});
