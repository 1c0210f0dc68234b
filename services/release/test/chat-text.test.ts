// What a chat target and a notification read: placeholders name the payload's fields by dotted
// path, and the title says what the event is about and where.
import { notificationPayload, renderChatText } from "../src/notifier/payload.js";

const input = {
  notificationId: "n-1",
  subscriptionId: "s-1",
  eventId: "e-1",
  eventType: "rdm.deployment.v1.DeploymentFailed",
  source: "rdm/deployment",
  subject: "d-1",
  occurredAt: new Date("2026-12-06T10:00:00Z"),
  json: {
    deploymentId: "d-1",
    environment: "production",
    reason: "health check failed",
    changeRequestIds: ["c-1", "c-2"],
    artifacts: [{ artifactId: "a-1" }],
  },
  linkBaseUrl: "https://rdm.example",
};
const payload = notificationPayload(input);

test("placeholders take top-level fields, dotted paths into the event and links, and lists joined", () => {
  expect(
    renderChatText(
      "[{{severity}}] {{title}} ({{ event.environment }}): {{event.reason}} ({{event.changeRequestIds}}) {{links.deployment}}",
      payload,
    ),
  ).toBe(
    "[CRITICAL] Deployment Failed: d-1 in production (production): health check failed (c-1, c-2) https://rdm.example/v1/deployments/d-1",
  );
});

test("a path naming nothing, an object or a list of objects renders empty", () => {
  expect(
    renderChatText(
      "<{{nope}}|{{event.nope.deeper}}|{{event}}|{{event.artifacts}}|{{title.length}}|{{__proto__}}>",
      payload,
    ),
  ).toBe("<|||||>");
});

test("{{link}} is the release's link when there is one, whatever order the stored payload's links come in", () => {
  // As read back from jsonb, which orders an object's keys shortest first.
  const stored = {
    ...payload,
    links: { change: "https://rdm.example/v1/changes/c-1", release: "https://rdm.example/v1/releases/r-1" },
  };
  expect(renderChatText("{{link}}", stored)).toBe("https://rdm.example/v1/releases/r-1");
  expect(renderChatText("{{link}}", payload)).toBe("https://rdm.example/v1/changes/c-1");
});

test("a title names what the event is about (a change's events: the change) and every environment it names", () => {
  const titled = (eventType: string, json: object, releaseKey?: string) =>
    notificationPayload({ ...input, eventType, json: json as never, releaseKey }).title;
  expect(
    titled(
      "rdm.change.v1.ChangeRequestScheduled",
      { changeRequestId: "c-1", environments: ["staging", "production"] },
      "REL-2026-0002",
    ),
  ).toBe("Change Request Scheduled: c-1 in staging, production");
  // Moved by a deployment, still about the change; its raise by its key.
  expect(
    titled("rdm.change.v1.ChangeImplementationStarted", {
      changeRequestId: "c-1",
      deploymentId: "d-1",
      environment: "production",
    }),
  ).toBe("Change Implementation Started: c-1 in production");
  expect(titled("rdm.change.v1.ChangeRequestRaised", { changeRequestId: "c-1", key: "CHG-2026-0007" })).toBe(
    "Change Request Raised: CHG-2026-0007",
  );
  expect(titled("rdm.deployment.v1.EnvironmentChanged", { environment: { name: "perf" } })).toBe(
    "Environment Changed in perf",
  );
  expect(
    titled("rdm.deployment.v1.DeploymentFailed", { deploymentId: "d-1", environment: "production" }, "REL-2026-0002"),
  ).toBe("Deployment Failed: REL-2026-0002 in production");
});

test("a release's record of a deployment links the deployment it names", () => {
  const recorded = notificationPayload({
    ...input,
    eventType: "rdm.release.v1.ReleaseDeploymentRecorded",
    json: { releaseId: "r-1", deployment: { deploymentId: "d-7", environment: "production" } },
    releaseKey: "REL-2026-0002",
  });
  expect([recorded.title, recorded.links.deployment]).toEqual([
    "Release Deployment Recorded: REL-2026-0002 in production",
    "https://rdm.example/v1/deployments/d-7",
  ]);
});
