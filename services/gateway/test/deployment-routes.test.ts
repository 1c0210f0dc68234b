// The deployment routes over their projection tables (no broker): inputs PostgreSQL cannot take
// are 400 problems, not 500s; unknown deployments and environments are 404; page tokens walk
// every deployment once; the routes are described in the OpenAPI document.
import { randomUUID } from "node:crypto";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { withTransaction } from "@rdm/eventstore";
import {
  CHANGE_EVENTS_TOPIC,
  CONFIGURATION_EVENTS_TOPIC,
  DEPLOYMENT_EVENTS_TOPIC,
  RELEASE_EVENTS_TOPIC,
} from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ChangeRequestRaisedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { CiLifecycleStatus, CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  ConfigurationItemRegisteredSchema,
  ConfigurationItemStatusChangedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import {
  DeploymentApprovalGrantedSchema,
  DeploymentPausedSchema,
  DeploymentPlannedSchema,
  DeploymentScheduledSchema,
  DeploymentStepClaimedSchema,
  DeploymentStepCompletedSchema,
  DeploymentSucceededSchema,
  EnvironmentChangedSchema,
  EnvironmentRegisteredSchema,
  StepKind,
  StepState,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleaseArtifactAttachedSchema, ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { encodePageToken, openDatabase, pageTokenScope } from "@rdm/runtime";
import { createTestDatabase, type PublishedEvent, PublishedStreams, type TestDatabase, uniqueId } from "@rdm/testkit";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { emptyPlan } from "../src/projections/deployment-plans/plan.js";
import { projections } from "../src/projections/index.js";
import { projectionHandler } from "../src/projections/projection.js";
import { releaseProjection } from "../src/projections/releases/projection.js";
import { migrateGateway } from "../src/service.js";
import { listeningGateway } from "./gateway-app.js";

let db: TestDatabase;
let pool: pg.Pool;
let app: FastifyInstance;
let gatewayUrl: string;
let bearer: string;

beforeAll(async () => {
  db = await createTestDatabase("gateway_deployment_routes");
  pool = await openDatabase(db.url);
  await migrateGateway(pool, createLogger("gateway", "warn"));
  ({ app, url: gatewayUrl, bearer } = await listeningGateway(pool));
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
  await db?.drop();
});

async function get(path: string) {
  const response = await fetch(`${gatewayUrl}${path}`, { headers: { authorization: bearer } });
  // biome-ignore lint/suspicious/noExplicitAny: the assertions below say what shape they expect
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

/** A /v1/deployments page token (unfiltered), with whatever sort key and id a client may forge. */
const pageToken = (sortKey: string, id: string) =>
  encodePageToken(pageTokenScope("gateway.GET /v1/deployments", {}), sortKey, id);

test.each([
  ["NUL in a deployment id", "/v1/deployments/dep%00one"],
  ["a deployment id that is no uuid", "/v1/deployments/not-a-uuid"],
  ["NUL in an environment filter", "/v1/deployments?environment=a%00b"],
  ["NUL in an environment", "/v1/environments/a%00b/inventory"],
  ["NUL in a page token id", `/v1/deployments?pageToken=${pageToken("2026-12-01T09:00:00.000Z", "a\u0000")}`],
  ["a page token that is not one", "/v1/deployments?pageToken=garbage"],
  ["an unknown state", "/v1/deployments?state=EXPLODED"],
  ["a release id that is no uuid", "/v1/releases/not-a-uuid/deployments"],
  ["an unknown filter", "/v1/deployments?colour=blue"],
  ["a filter on a route that takes none", "/v1/environments?colour=blue"],
  ["a filter on one deployment", `/v1/deployments/${randomUUID()}?colour=blue`],
])("%s is a 400 problem", async (_, path) => {
  const { status, body } = await get(path);
  expect({ status, body }).toEqual({
    status: 400,
    body: expect.objectContaining({ status: 400, title: "Bad Request" }),
  });
});

test("unknown deployments, environments and releases are 404; a release without deployments has none", async () => {
  expect((await get(`/v1/deployments/${randomUUID()}`)).status).toBe(404);
  expect((await get(`/v1/environments/${uniqueId("env")}/inventory`)).status).toBe(404);
  const unknown = randomUUID();
  expect(await get(`/v1/releases/${unknown}/deployments`)).toMatchObject({
    status: 404,
    body: { detail: `release ${unknown} not found` },
  });
  const releaseId = randomUUID();
  const registered = new PublishedStreams("olivia").event("rdm/release", ReleaseRegisteredSchema, releaseId, {
    releaseId,
    key: `REL-2026-${uniqueId("r")}`,
    title: "never deployed",
    type: ReleaseType.MINOR,
    owner: "owen",
    phase: ReleasePhase.REGISTRATION,
  });
  await withTransaction(pool, (tx) =>
    projectionHandler([releaseProjection], "")(registered, tx, { topic: RELEASE_EVENTS_TOPIC }),
  );
  expect(await get(`/v1/releases/${releaseId.toUpperCase()}/deployments`)).toEqual({
    status: 200,
    body: { deployments: [] },
  });
});

test("page tokens walk every deployment once, newest first", async () => {
  const environment = uniqueId("env");
  const ids = Array.from({ length: 5 }, () => uniqueId("dep"));
  for (const [i, id] of ids.entries()) {
    // Two share a time: the id breaks the tie.
    const at = new Date(Date.UTC(2026, 11, 1, 9, Math.min(i, 3)));
    const plan = { ...emptyPlan({ deploymentId: id, releaseId: randomUUID(), environment }), status: "IN_PROGRESS" };
    await pool.query(
      `INSERT INTO deployment_plan_view (deployment_id, release_id, environment, status, plan, version, updated_at,
         first_event_at)
       VALUES ($1, $2, $3, 'IN_PROGRESS', $4, 0, $5, $5)`,
      [id, plan.releaseId, environment, JSON.stringify(plan), at],
    );
  }
  const walked: string[] = [];
  let token: string | null = null;
  do {
    const page: { body: Record<string, unknown> } = await get(
      `/v1/deployments?environment=${environment}&pageSize=2${token ? `&pageToken=${token}` : ""}`,
    );
    walked.push(...(page.body.deployments as { deploymentId: string }[]).map((d) => d.deploymentId));
    token = page.body.nextPageToken as string | null;
  } while (token);
  const all = (await get(`/v1/deployments?environment=${environment}`)).body.deployments.map(
    (d: { deploymentId: string }) => d.deploymentId,
  );
  expect(walked).toEqual(all);
  expect([...walked].sort()).toEqual([...ids].sort());
});

/** A deployment-topic event applied as the gateway's consumer applies it: by every projection of the topic, in one transaction. */
const projectionsOf = (topic: string) => projections.filter((p) => p.topic === topic);
const projectDeploymentTopic = projectionHandler(projectionsOf(DEPLOYMENT_EVENTS_TOPIC), "");
const projected = (event: PublishedEvent) =>
  withTransaction(pool, (tx) => projectDeploymentTopic(event, tx, { topic: DEPLOYMENT_EVENTS_TOPIC }));

test("every deployment is listed from its plan on: those awaiting approval, scheduled, paused or verifying too", async () => {
  const streams = new PublishedStreams("deployer");
  const environment = uniqueId("env");
  const releaseId = randomUUID();
  const [waiting, scheduled, verifying] = [randomUUID(), randomUUID(), randomUUID()];
  let minute = 0;
  const publish = async <S extends DescMessage>(
    id: string,
    schema: S,
    init: Omit<MessageInitShape<S>, "metadata" | "$typeName">,
  ) => {
    const occurredAt = timestampFromDate(new Date(Date.UTC(2026, 11, 2, 9, ++minute)));
    await projected(streams.event("rdm/deployment", schema, id, init, { occurredAt }));
  };
  const steps = [
    { index: 0, kind: StepKind.DEPLOY, label: "all", targetCiIds: ["host-1"], state: StepState.PENDING },
    { index: 1, kind: StepKind.VERIFY, label: "verify", targetCiIds: ["host-1"], state: StepState.PENDING },
  ];
  const artifacts = [{ artifactId: "a-1", name: "payments-api", version: "4.2.0", targetCiIds: ["host-1"] }];
  const planned = (id: string, requiredApprovals: number) =>
    publish(id, DeploymentPlannedSchema, {
      deploymentId: id,
      releaseId,
      environment,
      artifacts,
      steps,
      requiredApprovals,
      approvalGroup: requiredApprovals ? "prod-approvers" : "",
    });
  const about = (id: string) => ({ deploymentId: id, releaseId, environment });
  await planned(waiting, 2);
  await publish(waiting, DeploymentApprovalGrantedSchema, { ...about(waiting), approver: "ann", quorumReached: false });
  await planned(scheduled, 0);
  await publish(scheduled, DeploymentScheduledSchema, about(scheduled));
  await publish(scheduled, DeploymentPausedSchema, { ...about(scheduled), reason: "incident elsewhere" });
  await planned(verifying, 0);
  await publish(verifying, DeploymentScheduledSchema, about(verifying));
  await publish(verifying, DeploymentStepClaimedSchema, { ...about(verifying), stepIndex: 0, executorId: "e-1" });
  await publish(verifying, DeploymentStepCompletedSchema, { ...about(verifying), stepIndex: 0 });
  await publish(verifying, DeploymentStepClaimedSchema, { ...about(verifying), stepIndex: 1, executorId: "e-1" });

  const listed = async (query: string) =>
    (await get(`/v1/deployments?environment=${environment}${query}`)).body.deployments.map(
      (d: { deploymentId: string; state: string; paused: boolean }) => [d.deploymentId, d.state, d.paused],
    );
  expect(await listed("")).toEqual([
    [verifying, "VERIFYING", false],
    [scheduled, "SCHEDULED", true],
    [waiting, "AWAITING_APPROVAL", false],
  ]);
  expect(await listed("&state=AWAITING_APPROVAL")).toEqual([[waiting, "AWAITING_APPROVAL", false]]);
  expect(await listed("&paused=true")).toEqual([[scheduled, "SCHEDULED", true]]);
  expect(await listed("&state=VERIFYING&paused=false")).toEqual([[verifying, "VERIFYING", false]]);
  expect((await get(`/v1/releases/${releaseId}/deployments`)).body.deployments).toHaveLength(3);

  const { status, body } = await get(`/v1/deployments/${waiting}`);
  expect(status).toBe(200);
  expect(body).toMatchObject({
    state: "AWAITING_APPROVAL",
    approvals: { required: 2, granted: 1, group: "prod-approvers" },
    artifacts,
    steps: [
      { index: 0, kind: "DEPLOY", state: "PENDING" },
      { index: 1, kind: "VERIFY", state: "PENDING" },
    ],
    startedAt: null,
    plannedAt: "2026-12-02T09:01:00.000Z",
  });
  expect((await get(`/v1/deployments/${scheduled}`)).body).toMatchObject({ reason: "incident elsewhere" });
});

test("environments and the inventory are listed in promotion order with their definitions, before any deployment too", async () => {
  const streams = new PublishedStreams("deployer");
  const [test, staging, production] = [uniqueId("test"), uniqueId("staging"), uniqueId("production")] as const;
  const environment = (name: string, promotionRank: number, promotesFrom: string) => ({
    name,
    promotionRank,
    promotesFrom,
    targetGroups: [{ name: "rest", ciIds: [`${name}-host-1`] }],
    protection: { approvalGroup: promotionRank === 3 ? "prod-approvers" : "", quorum: promotionRank === 3 ? 2 : 0 },
    executorLabels: [],
  });
  // Registered out of order; production's flag unset: it is production as no environment promotes from it.
  for (const [name, rank, from] of [
    [production, 3, staging],
    [test, 1, ""],
    [staging, 2, test],
  ] as const)
    await projected(
      streams.event("rdm/deployment", EnvironmentRegisteredSchema, `environment-${name}`, {
        environment: environment(name, rank, from),
      }),
    );
  await projected(
    streams.event("rdm/deployment", EnvironmentChangedSchema, `environment-${staging}`, {
      environment: { ...environment(staging, 2, test), frozen: true, freezeReason: "quarter end", production: false },
      reason: "freeze",
    }),
  );
  const ours = new Set([test, staging, production]);
  const { body } = await get("/v1/environments");
  const listed = (body.environments as { environment: string }[]).filter((e) => ours.has(e.environment));
  expect(listed).toMatchObject([
    {
      environment: test,
      definition: { promotionRank: 1, promotesFrom: "", production: false, frozen: false },
      health: null,
    },
    { environment: staging, definition: { production: false, frozen: true, freezeReason: "quarter end" }, entries: 0 },
    {
      environment: production,
      definition: {
        promotesFrom: staging,
        production: true,
        protection: { approvalGroup: "prod-approvers", quorum: 2 },
        targetGroups: [{ name: "rest", ciIds: [`${production}-host-1`] }],
      },
      lastOutcome: null,
    },
  ]);
  const inventory = await get(`/v1/environments/${production}/inventory`);
  expect(inventory).toMatchObject({ status: 200, body: { environment: production, entries: [], health: null } });
  const all = await get("/v1/inventory");
  const inventories = (all.body.environments as { environment: string }[]).filter((e) => ours.has(e.environment));
  expect(inventories).toEqual(listed.map((e) => ({ ...e, entries: [] })));
  const one = await get(`/v1/inventory?environment=${staging}`);
  expect(one.body.environments).toEqual([{ ...listed[1], entries: [] }]);
  // The KPIs take production as the listing does (a release's review counts there only).
  const kpis = async (name: string) => (await get(`/v1/kpis?environment=${name}`)).body.production;
  expect([await kpis(test), await kpis(staging), await kpis(production)]).toEqual([false, false, true]);
  // An environment named that is neither defined nor deployed to (a typo) is not an empty one.
  const typo = uniqueId("prodution");
  for (const path of [`/v1/inventory?environment=${typo}`, `/v1/kpis?environment=${typo}`]) {
    expect(await get(path)).toMatchObject({ status: 404, body: { detail: expect.stringContaining(typo) } });
  }
  // Production, the KPIs' default, is answered whether or not there is one.
  expect((await get("/v1/kpis")).body.environment).toBe("production");
});

test("targets the CMDB retired are named on their environment, and each inventory entry has its target's status", async () => {
  const environment = uniqueId("env");
  const [live, retired, unknown] = [randomUUID(), randomUUID(), uniqueId("host")];
  const deployments = new PublishedStreams("deployer");
  // The definition spells the retired host in capitals: the deployment service compares ids without case.
  const targets = [live, retired.toUpperCase(), unknown];
  await projected(
    deployments.event("rdm/deployment", EnvironmentRegisteredSchema, `environment-${environment}`, {
      environment: { name: environment, promotionRank: 1, targetGroups: [{ name: "rest", ciIds: targets }] },
    }),
  );
  const deploymentId = randomUUID();
  await projected(
    deployments.event("rdm/deployment", DeploymentSucceededSchema, deploymentId, {
      deploymentId,
      releaseId: randomUUID(),
      environment,
      artifacts: [{ artifactId: "a-1", name: "payments-api", version: "4.2.0", targetCiIds: targets }],
      environmentSequence: 1n,
    }),
  );
  const cmdb = new PublishedStreams("cora");
  const projectConfiguration = projectionHandler(projectionsOf(CONFIGURATION_EVENTS_TOPIC), "");
  for (const event of [
    ...[live, retired].map((ciId) =>
      cmdb.event("rdm/configuration", ConfigurationItemRegisteredSchema, ciId, {
        ciId,
        name: `host ${ciId}`,
        type: CiType.HOST,
        owner: "team",
        status: CiLifecycleStatus.LIVE,
      }),
    ),
    cmdb.event("rdm/configuration", ConfigurationItemStatusChangedSchema, retired, {
      ciId: retired,
      from: CiLifecycleStatus.LIVE,
      to: CiLifecycleStatus.RETIRED,
    }),
  ])
    await withTransaction(pool, (tx) => projectConfiguration(event, tx, { topic: CONFIGURATION_EVENTS_TOPIC }));

  const named = { environment, retiredTargetCiIds: [retired.toUpperCase()] };
  const listed = (await get("/v1/environments")).body.environments.find(
    (e: { environment: string }) => e.environment === environment,
  );
  expect(listed).toMatchObject(named);
  const inventory = await get(`/v1/environments/${environment}/inventory`);
  expect(inventory.body).toMatchObject(named);
  const statuses = Object.fromEntries(
    inventory.body.entries.map((e: { targetCiId: string; targetStatus: string | null }) => [
      e.targetCiId,
      e.targetStatus,
    ]),
  );
  expect(statuses).toEqual({ [live]: "LIVE", [retired.toUpperCase()]: "RETIRED", [unknown]: null });
  expect((await get(`/v1/inventory?environment=${environment}`)).body.environments).toMatchObject([named]);
  // Filtered by the CMDB's id, the target written in capitals is found.
  const filtered = await get(`/v1/inventory?environment=${environment}&targetCiId=${retired}`);
  expect(filtered.body.environments[0].entries.map((e: { targetCiId: string }) => e.targetCiId)).toEqual([
    retired.toUpperCase(),
  ]);
});

test("the KPIs of a service known elsewhere are zeros; of a service nothing names, 404", async () => {
  const [staging, production, host] = [uniqueId("staging"), uniqueId("production"), uniqueId("host")];
  const streams = new PublishedStreams("deployer");
  const deploymentId = randomUUID();
  const artifacts = [{ artifactId: "a-1", name: "payments-api", version: "4.2.0", targetCiIds: [host] }];
  // The host is deployed to in staging only; production is known by a deployment of its own.
  for (const [environment, id, targets] of [
    [staging, deploymentId, artifacts],
    [production, randomUUID(), []],
  ] as const)
    await projected(
      streams.event("rdm/deployment", DeploymentSucceededSchema, id, {
        deploymentId: id,
        releaseId: randomUUID(),
        environment,
        artifacts: [...targets],
        environmentSequence: 1n,
      }),
    );
  // A CI in the CMDB only, and one a release's package maps an artifact to only.
  const [inCmdb, packaged] = [uniqueId("ci"), uniqueId("ci")];
  const registered = new PublishedStreams("cora").event(
    "rdm/configuration",
    ConfigurationItemRegisteredSchema,
    inCmdb,
    {
      ciId: inCmdb,
      name: "payments-db",
      type: CiType.DATABASE,
      owner: "team",
      status: CiLifecycleStatus.LIVE,
    },
  );
  await withTransaction(pool, (tx) =>
    projectionHandler(projectionsOf(CONFIGURATION_EVENTS_TOPIC), "")(registered, tx, {
      topic: CONFIGURATION_EVENTS_TOPIC,
    }),
  );
  const releaseId = randomUUID();
  const releases = new PublishedStreams("olivia");
  for (const event of [
    releases.event("rdm/release", ReleaseRegisteredSchema, releaseId, {
      releaseId,
      key: `REL-2026-${uniqueId("r")}`,
      title: "packaged",
      type: ReleaseType.MINOR,
      owner: "owen",
      phase: ReleasePhase.REGISTRATION,
    }),
    releases.event("rdm/release", ReleaseArtifactAttachedSchema, releaseId, {
      releaseId,
      artifact: { artifactId: "a-2", name: "payments-api", version: "4.3.0", configurationItemId: packaged },
    }),
  ])
    await withTransaction(pool, (tx) =>
      projectionHandler([releaseProjection], "")(event, tx, { topic: RELEASE_EVENTS_TOPIC }),
    );
  // In a period after the release changed, so the period's facts do not name the packaged CI.
  const kpis = (service: string) =>
    get(`/v1/kpis?environment=${production}&service=${service}&at=2099-01-01T00:00:00Z`);
  // Ids compared without case, as the deployment gates compare targets.
  for (const known of [host, inCmdb, packaged].flatMap((id) => [id, id.toUpperCase()]))
    expect(await kpis(known)).toMatchObject({
      status: 200,
      body: { service: known, deploymentFrequency: { deployments: 0 } },
    });
  const unknown = uniqueId("svc");
  expect(await kpis(unknown)).toMatchObject({ status: 404, body: { detail: expect.stringContaining(unknown) } });
});

test("the audit trail puts a change naming no environment under the production environments", async () => {
  const streams = new PublishedStreams("deployer");
  const [staging, production] = [uniqueId("staging"), uniqueId("production")];
  for (const [name, rank, from] of [
    [staging, 1, ""],
    [production, 2, staging],
  ] as const)
    await projected(
      streams.event("rdm/deployment", EnvironmentRegisteredSchema, `environment-${name}`, {
        environment: { name, promotionRank: rank, promotesFrom: from, targetGroups: [], executorLabels: [] },
      }),
    );
  const changeRequestId = randomUUID();
  const raised = new PublishedStreams("carl").event("rdm/change", ChangeRequestRaisedSchema, changeRequestId, {
    changeRequestId,
    key: `CHG-2026-${uniqueId("c")}`,
    title: "no environment named",
  });
  await withTransaction(pool, (tx) =>
    projectionHandler(projectionsOf(CHANGE_EVENTS_TOPIC), "")(raised, tx, { topic: CHANGE_EVENTS_TOPIC }),
  );
  // Deployed to without a definition (a gateway not yet replayed): production, as nothing promotes from it.
  const undefinedYet = uniqueId("live");
  const deploymentId = randomUUID();
  await projected(
    streams.event("rdm/deployment", DeploymentSucceededSchema, deploymentId, {
      deploymentId,
      releaseId: randomUUID(),
      environment: undefinedYet,
      environmentSequence: 1n,
    }),
  );
  const audited = async (environment: string) =>
    (await get(`/v1/audit?change=${changeRequestId}&environment=${environment}`)).body.entries.length;
  expect([
    await audited(production),
    await audited(undefinedYet),
    await audited(staging),
    await audited(uniqueId("elsewhere")),
  ]).toEqual([1, 1, 0, 0]);
});

test("a page token pages on only with the list and filters that made it; the page size may change", async () => {
  const environment = uniqueId("env");
  const releaseId = randomUUID();
  for (let i = 0; i < 4; i++) {
    const plan = { ...emptyPlan({ deploymentId: uniqueId("dep"), releaseId, environment }), status: "IN_PROGRESS" };
    await pool.query(
      `INSERT INTO deployment_plan_view (deployment_id, release_id, environment, status, plan, version, updated_at,
         first_event_at)
       VALUES ($1, $2, $3, 'IN_PROGRESS', $4, 0, $5, $5)`,
      [plan.deploymentId, releaseId, environment, JSON.stringify(plan), new Date(Date.UTC(2026, 11, 2, 9, i))],
    );
  }
  const ids = (body: Record<string, unknown>) =>
    (body.deployments as { deploymentId: string }[]).map((d) => d.deploymentId);
  const filter = `environment=${environment}&releaseId=${releaseId}`;
  const all = ids((await get(`/v1/deployments?${filter}`)).body);
  const first = await get(`/v1/deployments?${filter}&pageSize=1`);
  const token = first.body.nextPageToken as string;
  // A larger page, the release id in upper case (the same filter), the rest in one.
  const rest = await get(
    `/v1/deployments?environment=${environment}&releaseId=${releaseId.toUpperCase()}&pageSize=10&pageToken=${token}`,
  );
  expect([rest.status, rest.body.nextPageToken]).toEqual([200, null]);
  expect([...ids(first.body), ...ids(rest.body)]).toEqual(all);
  expect(all).toHaveLength(4);

  const refused = {
    status: 400,
    body: expect.objectContaining({ detail: "pageToken does not belong to this list and filters" }),
  };
  for (const path of [
    `/v1/deployments?environment=${environment}&pageToken=${token}`,
    `/v1/deployments?${filter}&state=IN_PROGRESS&pageToken=${token}`,
    `/v1/deployments?environment=${uniqueId("env")}&releaseId=${releaseId}&pageToken=${token}`,
  ]) {
    expect([path, await get(path)]).toEqual([path, refused]);
  }
  // An unfiltered list's token, on another unfiltered list whose keys are a time and an id too.
  const unfiltered = (await get("/v1/deployments?pageSize=1")).body.nextPageToken as string;
  expect(await get(`/v1/dml/artifacts?pageToken=${unfiltered}`)).toEqual(refused);
});

test("the OpenAPI document describes the deployment routes with examples", async () => {
  const response = await fetch(`${gatewayUrl}/docs/json`);
  const doc = (await response.json()) as {
    paths: Record<string, Record<string, { summary?: string; tags?: string[] }>>;
  };
  for (const path of [
    "/v1/deployments",
    "/v1/deployments/{id}",
    "/v1/releases/{id}/deployments",
    "/v1/environments",
    "/v1/environments/{environment}/inventory",
  ]) {
    expect(doc.paths[path]?.get).toMatchObject({ summary: expect.any(String), tags: ["deployments"] });
  }
  expect(JSON.stringify(doc.paths["/v1/environments/{environment}/inventory"])).toContain("ROLLED_BACK");
});

test("the OpenAPI document gives every route its 400, 401, 403 and 503, and every event stream its 200 stream", async () => {
  const doc = (await (await fetch(`${gatewayUrl}/docs/json`)).json()) as {
    paths: Record<string, { get: { responses: Record<string, { content?: Record<string, unknown> }> } }>;
  };
  const routes = Object.entries(doc.paths).filter(([path]) => path.startsWith("/v1/"));
  expect(routes.length).toBeGreaterThan(20);
  for (const [path, { get }] of routes) {
    expect({ path, codes: Object.keys(get.responses) }).toEqual({
      path,
      codes: expect.arrayContaining(["200", "400", "401", "403", "503"]),
    });
    if (path.endsWith("/events")) {
      expect({ path, content: Object.keys(get.responses["200"]?.content ?? {}) }).toEqual({
        path,
        content: ["text/event-stream"],
      });
    }
  }
});
