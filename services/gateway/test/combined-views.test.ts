// The combined views through HTTP, fed over the real Kafka protocol into real PostgreSQL: one
// release's events on the four topics, delivered interleaved across partitions (the failed
// deployment's events before the earlier canary's). The overview, calendar, inventory, KPIs
// (exact figures) and audit trail combine them; the view stream resumes with Last-Event-ID; the
// rebuild command empties the views and replays the topics into views equal to the live ones.
import { randomUUID } from "node:crypto";
import { mintDevToken } from "@rdm/auth";
import { type RunningGateway, rebuildGateway, startGateway } from "@rdm/gateway";
import {
  CHANGE_EVENTS_TOPIC,
  type CloudEvent,
  CONFIGURATION_EVENTS_TOPIC,
  createKafka,
  createProducer,
  DEPLOYMENT_EVENTS_TOPIC,
  RELEASE_EVENTS_TOPIC,
  toKafkaMessage,
} from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { createTestDatabase, testKafkaBrokers, testTopicPrefix, uniqueId, waitFor } from "@rdm/testkit";
import type { Producer } from "kafkajs";
import { at, deviationRecorded, laterConfigurationFacts, story } from "./combined-views.fixtures.js";
import { openStream } from "./sse-client.js";

const secret = randomUUID() + randomUUID();
const topicPrefix = testTopicPrefix("combined-views");
const cleanups: (() => Promise<unknown>)[] = [];
let producer: Producer;
let bearer: string;
let env: NodeJS.ProcessEnv;
let gateway: RunningGateway;
const s = story();

async function publishTo(topic: string, partition: number, events: CloudEvent[]) {
  await producer.send({
    topic: `${topicPrefix}${topic}`,
    acks: -1,
    messages: events.map((e) => ({ ...toKafkaMessage(e), partition })),
  });
}

async function get(path: string) {
  const response = await fetch(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
  // biome-ignore lint/suspicious/noExplicitAny: the assertions below say what shape they expect
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

const TOTAL_EVENTS = 27;

beforeAll(async () => {
  const brokers = await testKafkaBrokers();
  producer = createProducer(
    createKafka({ brokers, clientId: uniqueId("views"), logger: createLogger("test", "warn") }),
  );
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  bearer = await mintDevToken({ subject: "vera", roles: ["viewer"], secret, issuer: "rdm", audience: "rdm" });
  const db = await createTestDatabase("gateway_combined_views");
  cleanups.push(db.drop);
  env = {
    DATABASE_URL: db.url,
    KAFKA_BROKERS: brokers.join(","),
    KAFKA_TOPIC_PREFIX: topicPrefix,
    AUTH_JWT_SECRET: secret,
    HTTP_PORT: "0",
    GATEWAY_CONSUMER_GROUP: uniqueId("gateway"),
    GATEWAY_CONSUMER_SESSION_TIMEOUT_MS: "6000",
    LOG_LEVEL: "warn",
  };
  gateway = await startGateway(env);
  // The later deployment first, then the earlier one on another partition; the release, its
  // change and its artifact after the deployments that name them.
  await publishTo(DEPLOYMENT_EVENTS_TOPIC, 1, s.failing);
  await publishTo(DEPLOYMENT_EVENTS_TOPIC, 2, s.withdrawn);
  await publishTo(DEPLOYMENT_EVENTS_TOPIC, 0, s.canary);
  await publishTo(CONFIGURATION_EVENTS_TOPIC, 2, s.configuration);
  await publishTo(RELEASE_EVENTS_TOPIC, 3, s.release);
  await publishTo(CHANGE_EVENTS_TOPIC, 0, s.change);
  await waitFor(async () => (await get("/v1/audit?limit=500")).body.entries?.length === TOTAL_EVENTS, {
    timeoutMs: 60_000,
    description: "every event in the audit trail",
  });
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  for (const cleanup of cleanups.reverse()) await cleanup();
});

test("the release overview combines the release, its changes, its artifacts and its deployments", async () => {
  const { status, body } = await get(`/v1/releases/${s.ids.release}/overview`);
  expect(status).toBe(200);
  expect(body).toMatchObject({ key: s.ids.key, phase: "PLANNING", status: "ACTIVE" });
  expect(body.approvals).toMatchObject([{ approvalId: "ap-1", status: "APPROVED", votes: [{ approver: "ann" }] }]);
  expect(body.linkedChanges).toMatchObject([{ changeRequestId: s.ids.change, known: true, state: "SCHEDULED" }]);
  expect(body.package).toMatchObject([
    { artifactId: s.ids.artifact, dmlStatus: "ACTIVE", integrity: "VERIFIED", identityMismatch: [], deployable: true },
    // Named otherwise than the DML registered it: no plan of it as the package says passes the gates.
    {
      artifactId: s.ids.worker,
      dmlStatus: "ACTIVE",
      identityMismatch: [{ field: "version", package: "1.0.0", dml: "1.0.1" }],
      deployable: false,
    },
  ]);
  expect(body.deadlines.misses).toEqual([
    { phase: "PLANNING", phaseEntry: 0, dueAt: at("01T12:00:00").toISOString(), escalated: false },
  ]);
  const [production] = body.environments;
  expect(body.environments).toHaveLength(1);
  expect(production.deployments.map((d: { deploymentId: string }) => d.deploymentId)).toEqual([
    s.ids.awaiting,
    s.ids.withdrawn,
    s.ids.failing,
    s.ids.canary,
  ]);
  // Neither the plan awaiting approval nor the cancelled one began: the rolled-back deployment
  // still stands for production.
  expect(production.deployments.slice(0, 2).map((d: { state: string }) => d.state)).toEqual([
    "AWAITING_APPROVAL",
    "CANCELLED",
  ]);
  expect(production.current).toMatchObject({
    deploymentId: s.ids.failing,
    state: "ROLLED_BACK",
    rollback: { automatic: true },
  });
  expect(production.deployments[3]).toMatchObject({
    state: "SUCCEEDED",
    strategy: "CANARY",
    linkedChangeIds: [s.ids.change],
    progress: {
      stepsTotal: 3,
      stepsCompleted: 1,
      deployStepsTotal: 2,
      deployStepsCompleted: 1,
      currentStep: { index: 1, kind: "DEPLOY", label: "100%" },
      targetsSucceeded: 1,
      targetsFailed: 0,
    },
  });
  expect((await get(`/v1/releases/${randomUUID()}/overview`)).status).toBe(404);
});

test("the calendar of an environment shows the windows and their conflicts", async () => {
  const range = `from=${at("02T00:00:00").toISOString()}&to=${at("03T00:00:00").toISOString()}`;
  const { status, body } = await get(`/v1/calendar?${range}&environment=${s.ids.environment}`);
  expect(status).toBe(200);
  expect(body.changes.map((c: { changeRequestId: string }) => c.changeRequestId)).toEqual([s.ids.change]);
  expect(body.releases.map((r: { releaseId: string }) => r.releaseId)).toEqual([s.ids.release]);
  // The failing deployment was planned without a window: not on the calendar.
  expect(body.deployments).toMatchObject([{ deploymentId: s.ids.canary, releaseKey: s.ids.key, state: "SUCCEEDED" }]);
  expect(body.freezeWindows.map((f: { freezeWindowId: string }) => f.freezeWindowId)).toEqual([s.ids.freeze]);
  expect(
    body.conflicts.map((c: { kind: string; items: { id: string }[] }) => [c.kind, c.items.map((i) => i.id)]),
  ).toEqual([
    ["CHANGE_FREEZE", [s.ids.change, s.ids.freeze]],
    ["DEPLOYMENT_FREEZE", [s.ids.canary, s.ids.freeze]],
  ]);
  const elsewhere = await get(`/v1/calendar?${range}&environment=${uniqueId("env")}`);
  expect([elsewhere.body.changes, elsewhere.body.deployments, elsewhere.body.freezeWindows]).toEqual([[], [], []]);
});

test("the inventory names version, target, since, release and deployment, after the rollback", async () => {
  const { body } = await get(`/v1/inventory?environment=${s.ids.environment}`);
  expect(body.environments).toHaveLength(1);
  expect(body.environments[0]).toMatchObject({ health: "HEALTHY", lastOutcome: "ROLLED_BACK" });
  const rows = body.environments[0].entries.map((e: Record<string, string>) => [
    e.targetCiId,
    e.artifactVersion,
    e.since,
    e.deploymentId,
    e.releaseKey,
    e.via,
  ]);
  expect(rows).toEqual(
    [
      [s.ids.h1, "2.0.0", at("03T09:20:00").toISOString(), s.ids.failing, s.ids.key, "ROLLED_BACK"],
      [s.ids.h2, "2.0.0", at("02T10:00:00").toISOString(), s.ids.canary, s.ids.key, "SUCCEEDED"],
    ].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
  );
  // The environment's own route answers the same entries.
  const own = await get(`/v1/environments/${s.ids.environment}/inventory`);
  expect(own.body.entries).toEqual(body.environments[0].entries);
});

test("the KPIs of the week, with the counts they came from", async () => {
  const query = `environment=${s.ids.environment}&period=week&at=${at("02T12:00:00").toISOString()}`;
  const expected = {
    period: "week",
    from: "2026-11-30T00:00:00.000Z",
    to: "2026-12-07T00:00:00.000Z",
    environment: s.ids.environment,
    // No definition projected: production, as nothing promotes from it.
    production: true,
    deploymentFrequency: { deployments: 1, days: 7, perDay: 1 / 7 },
    // Registered 12-01 08:00, succeeded 12-02 10:00.
    leadTimeForChanges: { count: 1, totalSeconds: 93_600, meanSeconds: 93_600, medianSeconds: 93_600 },
    changeFailureRate: { deployments: 2, failures: 1, failed: 1, rolledBack: 1, neededFix: 0, rate: 0.5 },
    timeToRestore: { count: 1, totalSeconds: 1200, meanSeconds: 1200, medianSeconds: 1200, unrestored: 0 },
    onTimeReleaseRate: { releases: 1, withPlannedWindow: 1, onTime: 1, late: 0, rate: 1 },
    approvalLeadTime: { count: 1, totalSeconds: 1800, meanSeconds: 1800, medianSeconds: 1800 },
    slaBreaches: { breaches: 1, escalated: 0 },
  };
  expect((await get(`/v1/kpis?${query}`)).body).toEqual({ ...expected, service: null });
  expect((await get(`/v1/kpis?${query}&service=${s.ids.service}`)).body).toEqual({
    ...expected,
    service: s.ids.service,
  });
  const unknown = uniqueId("svc");
  expect(await get(`/v1/kpis?${query}&service=${unknown}`)).toEqual({
    status: 404,
    body: expect.objectContaining({
      detail: `configuration item ${unknown} is neither in the CMDB nor deployed nor packaged`,
    }),
  });
  expect((await get(`/v1/kpis?${query}&period=year`)).status).toBe(400);
});

test("the audit trail filters by release, actor, environment and correlation, and pages by keyset", async () => {
  const count = async (filter: string) => (await get(`/v1/audit?limit=500&${filter}`)).body.entries.length;
  // The release's 7 events, its change's raise, and the four deployments' events (step events
  // name only their deployment: the plan names the release).
  expect(await count(`release=${s.ids.release}`)).toBe(23);
  expect(await count("actor=ann")).toBe(1);
  expect(await count(`environment=${s.ids.environment}`)).toBe(17);
  expect(await count(`correlation=corr-${s.ids.canary}`)).toBe(7);
  expect(await count(`change=${s.ids.change}`)).toBe(2);
  const window = `from=${at("02T00:00:00").toISOString()}&to=${at("03T00:00:00").toISOString()}`;
  expect(await count(window)).toBe(7);

  const walked: string[] = [];
  let after = 0;
  for (let page = 0; page < 10; page++) {
    const { body } = await get(`/v1/audit?release=${s.ids.release}&limit=5&after=${after}`);
    walked.push(...body.entries.map((e: { eventId: string }) => e.eventId));
    if (body.nextAfter === null) break;
    after = body.nextAfter;
  }
  expect(new Set(walked).size).toBe(23);
  expect(walked).toHaveLength(23);
  const granted = (await get("/v1/audit?actor=ann")).body.entries[0];
  expect(granted).toMatchObject({
    source: "release",
    eventType: "rdm.release.v1.ReleaseApprovalGranted",
    releaseId: s.ids.release,
    occurredAt: at("01T09:30:00").toISOString(),
    causationId: expect.stringMatching(/.+/),
  });
});

test("the view stream carries every view's changes and resumes after Last-Event-ID", async () => {
  const path = `/v1/views/events?view=inventory&release=${s.ids.release}&after=0`;
  const stream = await openStream(gateway.url, path, { authorization: `Bearer ${bearer}` });
  let second: Awaited<ReturnType<typeof stream.nextEvent>>;
  try {
    const first = await stream.nextEvent();
    second = await stream.nextEvent();
    expect(first.event).toBe("inventory");
    expect(second.id).toBeGreaterThan(first.id);
    expect(second.data.views).toContain("inventory");
  } finally {
    stream.close();
  }
  const resumed = await openStream(gateway.url, path, {
    authorization: `Bearer ${bearer}`,
    "last-event-id": String(second.id),
  });
  try {
    expect((await resumed.nextEvent()).id).toBeGreaterThan(second.id);
  } finally {
    resumed.close();
  }
});

test("a dashboard's view stream receives a release's new event live", async () => {
  const stream = await openStream(gateway.url, `/v1/views/events?view=overview&release=${s.ids.release}`, {
    authorization: `Bearer ${bearer}`,
  });
  try {
    await publishTo(RELEASE_EVENTS_TOPIC, 3, [deviationRecorded(s.ids)]);
    expect(await stream.nextEvent()).toMatchObject({
      event: "overview",
      data: { eventType: "rdm.release.v1.ReleaseLogEntryRecorded", releaseId: s.ids.release },
    });
  } finally {
    stream.close();
  }
  const { body } = await get(`/v1/releases/${s.ids.release}/overview`);
  expect(body.log).toMatchObject([{ entryId: "dev-1", kind: "DEVIATION", text: "production rollback" }]);
});

test("a dashboard's view stream receives the configuration facts about its release's package or its environment's targets", async () => {
  const facts = laterConfigurationFacts(s.ids);
  await publishTo(DEPLOYMENT_EVENTS_TOPIC, 3, [facts.registered]);
  await waitFor(async () => (await get(`/v1/environments/${facts.staging}/inventory`)).status === 200 || undefined, {
    timeoutMs: 30_000,
    description: "the staging environment defined at the gateway",
  });
  const headers = { authorization: `Bearer ${bearer}` };
  const ofRelease = await openStream(gateway.url, `/v1/views/events?view=overview&release=${s.ids.release}`, headers);
  const ofStaging = await openStream(
    gateway.url,
    `/v1/views/events?view=inventory&environment=${facts.staging}`,
    headers,
  );
  try {
    await publishTo(CONFIGURATION_EVENTS_TOPIC, 2, [facts.quarantined, facts.maintenance]);
    expect(await ofRelease.nextEvent()).toMatchObject({
      event: "overview",
      data: { eventType: "rdm.configuration.v1.ArtifactQuarantined" },
    });
    // Its target's status, not the quarantine (about no target of it).
    expect((await ofStaging.nextEvent()).data).toMatchObject({
      eventType: "rdm.configuration.v1.ConfigurationItemStatusChanged",
    });
  } finally {
    ofRelease.close();
    ofStaging.close();
  }
  const { body } = await get(`/v1/releases/${s.ids.release}/overview`);
  expect(body.package[0]).toMatchObject({ artifactId: s.ids.artifact, dmlStatus: "QUARANTINED", deployable: false });
});

test("a rebuild is refused while a gateway projects; once stopped, the rebuilt views equal the live ones", async () => {
  await expect(rebuildGateway(env)).rejects.toThrow("stop it before a rebuild");
  const paths = [
    `/v1/releases/${s.ids.release}/overview`,
    `/v1/calendar?from=${at("01T00:00:00").toISOString()}&to=${at("05T00:00:00").toISOString()}`,
    "/v1/inventory",
    `/v1/kpis?environment=${s.ids.environment}&at=${at("02T12:00:00").toISOString()}`,
  ];
  const snapshot = async () => ({
    views: await Promise.all(paths.map(async (p) => (await get(p)).body)),
    // Rebuilt seqs follow the old ones (and the order across partitions may differ): by event id.
    audit: (await get("/v1/audit?limit=500")).body.entries
      .map(({ seq: _, ...entry }: { seq: number }) => entry)
      .sort((a: { eventId: string }, b: { eventId: string }) => a.eventId.localeCompare(b.eventId)),
    lastSeq: Math.max(...(await get("/v1/audit?limit=500")).body.entries.map((e: { seq: number }) => e.seq)),
  });
  const live = await snapshot();
  await gateway.stop();
  // It serves no request: no token verifier needed.
  const { AUTH_JWT_SECRET: _, ...withoutAuth } = env;
  await rebuildGateway(withoutAuth);
  gateway = await startGateway(env);
  const rebuilt = await snapshot();
  expect(rebuilt.views).toEqual(live.views);
  expect(rebuilt.audit).toEqual(live.audit);
  expect(
    Math.min(...(await get("/v1/audit?limit=500")).body.entries.map((e: { seq: number }) => e.seq)),
  ).toBeGreaterThan(live.lastSeq);
}, 120_000);

test.each([
  ["NUL in an audit filter", "/v1/audit?actor=a%00b"],
  ["a page cursor that is no integer", "/v1/audit?after=1e3"],
  ["a limit beyond 500", "/v1/audit?limit=501"],
  ["an unknown audit filter", "/v1/audit?colour=blue"],
  ["a KPI instant that is no date-time", "/v1/kpis?at=yesterday"],
  ["a calendar range backwards", "/v1/calendar?from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z"],
  ["a calendar range over 366 days", "/v1/calendar?from=2026-01-01T00:00:00Z&to=2027-01-02T00:00:01Z"],
  ["an unknown view", "/v1/views/events?view=weather"],
  ["an overview of no uuid", "/v1/releases/not-a-uuid/overview"],
])("%s is a 400 problem", async (_, path) => {
  expect(await get(path)).toEqual({
    status: 400,
    body: expect.objectContaining({ status: 400, title: "Bad Request" }),
  });
});

test("the OpenAPI document describes every combined view with examples, and the KPIs with their definitions", async () => {
  const doc = (await (await fetch(`${gateway.url}/docs/json`)).json()) as {
    paths: Record<string, { get?: { summary?: string; description?: string; tags?: string[] } }>;
  };
  const described = {
    "/v1/releases/{id}/overview": "overview",
    "/v1/calendar": "calendar",
    "/v1/inventory": "inventory",
    "/v1/kpis": "kpis",
    "/v1/audit": "audit",
    "/v1/audit/events": "audit",
    "/v1/views/events": "audit",
  };
  for (const [path, tag] of Object.entries(described))
    expect(doc.paths[path]?.get).toMatchObject({ summary: expect.any(String), tags: [tag] });
  for (const kpi of ["deploymentFrequency", "leadTimeForChanges", "changeFailureRate", "timeToRestore"])
    expect(doc.paths["/v1/kpis"]?.get?.description).toContain(`**${kpi}**`);
  for (const path of ["/v1/releases/{id}/overview", "/v1/calendar", "/v1/kpis", "/v1/audit"])
    expect(JSON.stringify(doc.paths[path])).toMatch(/"examples?":\{/); // the response's example
});
