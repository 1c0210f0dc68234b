// A change cancelled after its release was approved, end to end through public interfaces (gRPC,
// the gateway's HTTP views, Kafka): the release's gate closes again (gate.linked_change_cancelled),
// the deployment service refuses to start the release's deployment (gate.change_cancelled; and
// gate.target_retired once its host is retired in the CMDB), the gateway shows the change
// CANCELLED, off the calendar and out of its collisions, and production naming its retired host.
// Then every service and the gateway read every topic again through new consumer groups: nothing
// changes.
import { createHash, randomUUID } from "node:crypto";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createGrpcClient, errorDetails, GrpcStatus } from "@rdm/grpc";
import { HANDLED_EVENTS_TABLE } from "@rdm/messaging";
import { ChangeImpact, ChangeState, ChangeUrgency } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { CiLifecycleStatus, CiType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { DeploymentStrategyKind } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { ReleasePhase, ReleaseType, TaskStatus } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { uniqueId, waitFor } from "@rdm/testkit";
import pg from "pg";
import { authorizedChange, e2eStack, type StartedGateway, type StartedService } from "./harness.js";

const stack = e2eStack("e2e-change-cancel");
const SERVICES = ["release", "change", "configuration", "deployment"] as const;
type ServiceName = (typeof SERVICES)[number];
const databases = {} as Record<ServiceName | "gateway", string>;
const firstGroup = uniqueId("e2e-cancel-group");
let running: Record<ServiceName, StartedService>;
let gateway: StartedGateway;
const rid = () => ({ requestId: randomUUID() });
const WAIT = { timeoutMs: 60_000 };
const ts = (d: Date) => timestampFromDate(d);

/** Starts every service and a gateway on their databases, in consumer groups named after `group`. */
async function startAll(group: string) {
  const [release, change, configuration, deployment, gw] = await Promise.all([
    ...SERVICES.map((n) => stack[n]({ databaseUrl: databases[n], group: `${group}-${n}` })),
    stack.gateway({ databaseUrl: databases.gateway, group: `${group}-gateway` }),
  ]);
  return {
    services: { release, change, configuration, deployment } as Record<ServiceName, StartedService>,
    gateway: gw as StartedGateway,
  };
}

beforeAll(async () => {
  for (const n of [...SERVICES, "gateway"] as const) databases[n] = await stack.database(n);
  ({ services: running, gateway } = await startAll(firstGroup));
}, 180_000);

afterAll(() => stack.stop());

async function clients(subject: string, roles: Parameters<typeof stack.token>[1], groups: string[] = []) {
  const options = { token: await stack.token(subject, roles, groups) };
  const clients = {
    release: createGrpcClient(ReleaseService, running.release.address, options),
    change: createGrpcClient(ChangeService, running.change.address, options),
    configuration: createGrpcClient(ConfigurationService, running.configuration.address, options),
    deployment: createGrpcClient(DeploymentService, running.deployment.address, options),
  };
  stack.onStop(() => {
    for (const client of Object.values(clients)) client.close();
  });
  return clients;
}

/** One small pool per database, ended by stop(). */
const pools = new Map<string, pg.Pool>();
const pool = (url: string) => {
  let p = pools.get(url);
  if (!p) {
    p = new pg.Pool({ connectionString: url, max: 1 });
    pools.set(url, p);
    stack.onStop(() => p?.end());
  }
  return p;
};

/** Events handled per consumer group (without its prefix) and topic, in every database. */
async function handledBy(group: string) {
  const counts: Record<string, string> = {};
  const results = await Promise.all(
    Object.entries(databases).map(async ([n, url]) => {
      const { rows } = await pool(url).query<{ consumer_group: string; topic: string; n: string }>(
        `SELECT consumer_group, topic, count(*)::text AS n FROM ${HANDLED_EVENTS_TABLE}
         WHERE starts_with(consumer_group, $1) GROUP BY 1, 2 ORDER BY 1, 2`,
        [`${group}-${n}`],
      );
      return rows;
    }),
  );
  for (const row of results.flat()) counts[`${row.consumer_group.slice(group.length)} ${row.topic}`] = row.n;
  return counts;
}

/** Every stream's version in every service's store. */
async function streamVersions() {
  const versions: Record<string, string> = {};
  for (const n of SERVICES) {
    const db = new pg.Client({ connectionString: databases[n] });
    await db.connect();
    const { rows } = await db.query<{ stream_id: string; version: string }>(
      "SELECT stream_id, max(version)::text AS version FROM events GROUP BY stream_id",
    );
    await db.end();
    for (const row of rows) versions[`${n} ${row.stream_id}`] = row.version;
  }
  return versions;
}

/** The rules a refused StartDeployment names (FAILED_PRECONDITION), sorted. */
async function refusedRules(call: Promise<unknown>): Promise<string[]> {
  const details = errorDetails(
    await call.then(
      () => new Error("expected a refusal"),
      (e: unknown) => e,
    ),
  );
  if (details.code !== GrpcStatus.FAILED_PRECONDITION) return [`${GrpcStatus[details.code]}: ${details.message}`];
  return (details.preconditionFailure?.violations ?? []).map((v) => `${v.type} ${v.subject}`).sort();
}

test("a change cancelled after its release's approval closes the release's gate and refuses the deployment", async () => {
  const rita = await clients("rita", ["release-manager"]);
  const carl = await clients("carl", ["release-coordinator"]);
  const chris = await clients("chris", ["change-manager"]);
  const ann = await clients("ann", ["approver"], ["cab"]);
  const ben = await clients("ben", ["approver"], ["cab"]);
  const dana = await clients("dana", ["deployer"]);
  const cora = await clients("cora", ["config-manager"]);
  const viewer = await stack.token("vera", ["viewer"]);

  // The DML artifact, the CMDB host and the one environment the release goes to.
  const host = (await cora.configuration.registerConfigurationItem({ ...rid(), name: "pay-1", type: CiType.HOST })).item
    ?.ciId as string;
  await rita.deployment.registerEnvironment({
    ...rid(),
    environment: { name: "production", promotionRank: 1, targetGroups: [{ name: "rest", ciIds: [host] }] },
  });
  const sha256 = createHash("sha256").update("payments 2.0.0").digest("hex");
  const pkg = { name: "payments", version: "2.0.0", sha256 };
  const { artifact } = await cora.configuration.registerArtifact({
    ...rid(),
    ...pkg,
    sizeBytes: 2048n,
    mediaUri: "s3://dml/payments-2.0.0.tgz",
  });
  const artifactId = artifact?.artifactId as string;
  await cora.configuration.verifyArtifact({ ...rid(), artifactId, sha256 });

  // Two changes on the payments service in overlapping windows around now, both authorized and scheduled.
  const now = Date.now();
  const window = { start: ts(new Date(now - 3_600_000)), end: ts(new Date(now + 4 * 3_600_000)) };
  const paymentsChange = (title: string) =>
    authorizedChange(
      chris,
      [ann],
      {
        title,
        justification: "new payment provider",
        affectedCiIds: ["ci-payments"],
        environments: ["production"],
        implementationPlan: "deploy the release",
        backoutPlan: "roll back to the last baseline",
      },
      window,
      { impact: ChangeImpact.LOW, urgency: ChangeUrgency.LOW },
    );
  const changeId = await paymentsChange("Payments 2.0");
  const otherId = await paymentsChange("Payments database index");

  // The release, linked to the change, walked through its approval to its deployment phase.
  const { release } = await rita.release.registerRelease({
    ...rid(),
    title: "Payments 2.0",
    type: ReleaseType.MINOR,
    owner: "olivia",
    coordinator: "carl",
  });
  const releaseId = release?.releaseId as string;
  await carl.release.linkChangeRequest({ ...rid(), releaseId, changeRequestId: changeId });
  const completeTasks = async () => {
    const current = (await carl.release.getRelease({ releaseId })).release;
    for (const task of current?.tasks ?? []) {
      const open = task.phase === current?.phase && task.phaseEntry === current.phaseEntry && task.required;
      if (open && task.status !== TaskStatus.DONE)
        await carl.release.completeReleaseTask({ ...rid(), releaseId, taskId: task.taskId });
    }
  };
  const advance = async (to: ReleasePhase) => {
    await completeTasks();
    expect((await carl.release.advanceReleasePhase({ ...rid(), releaseId })).release?.phase).toBe(to);
  };
  await advance(ReleasePhase.ASSESSMENT);
  await advance(ReleasePhase.PLANNING);
  await advance(ReleasePhase.APPROVAL);
  const requested = await carl.release.requestReleaseApproval({ ...rid(), releaseId, approverGroup: "cab" });
  const approvalId = requested.release?.approvals.at(-1)?.approvalId as string;
  await ann.release.approveRelease({ ...rid(), releaseId, approvalId, comment: "ok" });
  await ben.release.approveRelease({ ...rid(), releaseId, approvalId, comment: "ok" });
  await waitFor(async () => (await rita.release.getReleaseGate({ releaseId })).open, {
    ...WAIT,
    description: "the approval gate open (the change authorized)",
  });
  await advance(ReleasePhase.BUILD_AND_TEST);
  await carl.release.attachReleaseArtifact({ ...rid(), releaseId, artifactId, ...pkg, configurationItemId: host });
  await advance(ReleasePhase.DEPLOYMENT);
  // The deployment phase's own tasks done: its gate is open until the change is cancelled.
  await completeTasks();
  expect((await rita.release.getReleaseGate({ releaseId })).open).toBe(true);

  const { deployment } = await dana.deployment.planDeployment({
    ...rid(),
    releaseId,
    environment: "production",
    artifacts: [{ artifactId, name: pkg.name, version: pkg.version }],
    strategy: { kind: DeploymentStrategyKind.ALL_AT_ONCE },
  });
  const deploymentId = deployment?.deploymentId as string;
  // Frozen, so that nothing starts while the facts arrive: once they are in, the freeze alone refuses.
  const freeze = (frozen: boolean) =>
    rita.deployment.setEnvironmentFreeze({ ...rid(), environment: "production", frozen, reason: frozen ? "hold" : "" });
  const refusedWith = (expected: string[], description: string) =>
    waitFor(
      async () =>
        JSON.stringify(await refusedRules(dana.deployment.startDeployment({ ...rid(), deploymentId }))) ===
        JSON.stringify(expected),
      { ...WAIT, description },
    );
  await freeze(true);
  await refusedWith(["gate.environment_frozen production"], "every gate but the freeze met");
  const calendarPath = `/v1/calendar?from=${new Date(now - 86_400_000).toISOString()}&to=${new Date(now + 86_400_000).toISOString()}`;
  const collisionIds = async () =>
    ((await stack.getJson(gateway.url, calendarPath, viewer)).body?.collisions ?? []).map(
      (c: { changes: { changeRequestId: string }[] }) => c.changes.map((x) => x.changeRequestId).sort(),
    );
  await waitFor(async () => (await collisionIds()).length === 1, { ...WAIT, description: "the two changes collide" });
  expect(await collisionIds()).toEqual([[changeId, otherId].sort()]);

  // The change manager withdraws the change: the release's gate closes again.
  const cancelled = await chris.change.cancelChange({ ...rid(), changeRequestId: changeId, reason: "provider late" });
  expect(cancelled.change?.state).toBe(ChangeState.CANCELLED);
  const gate = await waitFor(
    async () => {
      const g = await rita.release.getReleaseGate({ releaseId });
      return g.open ? undefined : g;
    },
    { ...WAIT, description: "the release's gate closed by the cancellation" },
  );
  expect(gate.conditions.filter((c) => !c.met).map((c) => [c.rule, c.subject])).toEqual([
    ["gate.linked_change_cancelled", changeId],
  ]);
  await refusedWith(
    [`gate.change_cancelled ${changeId}`, "gate.change_required production", "gate.environment_frozen production"],
    "the cancellation known to the deployment gates",
  );
  // Thawed, the cancelled change refuses the start, and production is left with no change.
  await freeze(false);
  expect(await refusedRules(dana.deployment.startDeployment({ ...rid(), deploymentId }))).toEqual([
    `gate.change_cancelled ${changeId}`,
    "gate.change_required production",
  ]);
  // Unlinked (no longer in the way of the release's gate), production still needs a change.
  await carl.release.unlinkChangeRequest({ ...rid(), releaseId, changeRequestId: changeId });
  await refusedWith(["gate.change_required production"], "the unlink known to the deployment gates");
  // The host retired in the CMDB (decommissioned): nothing goes to it any more.
  await cora.configuration.changeConfigurationItemStatus({ ...rid(), ciId: host, status: CiLifecycleStatus.RETIRED });
  const expectedRefusal = ["gate.change_required production", "gate.target_retired production"];
  await refusedWith(expectedRefusal, "the host's retirement known to the deployment gates");
  await waitFor(
    async () => (await chris.change.getChange({ changeRequestId: changeId })).change?.linkedReleaseId === "",
    {
      ...WAIT,
      description: "the unlink mirrored on the change",
    },
  );

  // The gateway: the change CANCELLED with its reason, off the calendar, its collision gone.
  const changePath = `/v1/changes/${changeId}`;
  const view = await waitFor(
    async () => {
      const { body } = await stack.getJson(gateway.url, changePath, viewer);
      return body?.state === "CANCELLED" ? body : undefined;
    },
    { ...WAIT, description: "the gateway's change view CANCELLED" },
  );
  expect(view).toMatchObject({ cancellationReason: "provider late", cancelledBy: "chris" });
  const calendar = (await stack.getJson(gateway.url, calendarPath, viewer)).body;
  expect(calendar.changes.map((c: { changeRequestId: string }) => c.changeRequestId)).toEqual([otherId]);
  expect(calendar.collisions).toEqual([]);
  // Production names its retired host, so an operator sees why a start there is refused.
  const environments = await waitFor(
    async () => {
      const { body } = await stack.getJson(gateway.url, "/v1/environments", viewer);
      const production = body?.environments?.find((e: { environment: string }) => e.environment === "production");
      return production?.retiredTargetCiIds?.length ? body : undefined;
    },
    { ...WAIT, description: "the gateway's production naming its retired host" },
  );
  expect(environments.environments).toMatchObject([{ environment: "production", retiredTargetCiIds: [host] }]);

  // A replay of every topic through new consumer groups changes nothing (the change's link and
  // unlink are not mirrored again).
  const before = {
    versions: await streamVersions(),
    gate: await rita.release.getReleaseGate({ releaseId }),
    change: view,
    calendar,
    environments,
  };
  const replayGroup = uniqueId("e2e-cancel-replay");
  const replayed = await startAll(replayGroup);
  let counts = {};
  await waitFor(
    async () => {
      const [first, again] = await Promise.all([handledBy(firstGroup), handledBy(replayGroup)]);
      counts = { first, again };
      return Object.keys(first).length > 0 && JSON.stringify(first) === JSON.stringify(again);
    },
    { timeoutMs: 240_000, intervalMs: 500, description: "the new consumer groups through every topic" },
  ).catch((error: Error) => {
    throw new Error(`${error.message}; handled: ${JSON.stringify(counts)}`, { cause: error });
  });
  expect(await streamVersions()).toEqual(before.versions);
  expect(await rita.release.getReleaseGate({ releaseId })).toEqual(before.gate);
  expect(await refusedRules(dana.deployment.startDeployment({ ...rid(), deploymentId }))).toEqual(expectedRefusal);
  expect((await stack.getJson(replayed.gateway.url, changePath, viewer)).body).toEqual(before.change);
  expect((await stack.getJson(replayed.gateway.url, calendarPath, viewer)).body).toEqual(before.calendar);
  expect((await stack.getJson(replayed.gateway.url, "/v1/environments", viewer)).body).toEqual(before.environments);
}, 480_000);
