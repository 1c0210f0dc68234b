/**
 * The one e2e harness: what every end-to-end file needs to run the platform against the shared
 * test PostgreSQL and Kafka-protocol broker (started by the jest global setup).
 *
 * ```ts
 * const stack = e2eStack("e2e-my-flow");            // topics, secret and consumer groups of its own
 * afterAll(() => stack.stop());                      // stops what it started, newest first
 * let release: StartedService, gateway: StartedGateway;
 * beforeAll(async () => {
 *   [release, gateway] = await Promise.all([stack.release(), stack.gateway()]);
 * });
 * const client = createGrpcClient(ReleaseService, release.address, { token: await stack.token("olivia", ["release-manager"]) });
 * const { status, body } = await stack.getJson(gateway.url, "/v1/releases", await stack.token("vera", ["viewer"]));
 * ```
 *
 * - `release()`, `change()`, `configuration()`, `deployment()`, `gateway()` start one component
 *   in this process, each on a database of its own (`{ databaseUrl }` reuses one; `database()`
 *   creates one for a component started otherwise), on port 0 (`{ port }` for a restart), with
 *   a unique consumer group (`{ group }` names one) and short test session timeouts; `{ env }`
 *   adds or overrides variables.
 * - `env(component, { databaseUrl, port })` is the same environment for a component run as a
 *   process of its own: `spawnService(component, env)` starts its built `dist/main.js`, and
 *   `stop()` kills what is still running.
 * - `token(subject, roles, groups?)` mints a token the started components accept;
 *   `registerWithoutTrace(address, token, title)` registers a release sending no traceparent.
 * - `executor(deployment, { environments, command, poll? })` is a reference executor running
 *   `command` for each step; `poll: true` starts its claim loop, else the test calls `runOnce()`.
 * - `producer()` is a connected Kafka producer, for events a component not started would publish.
 * - `onStop(fn)` adds a cleanup (clients, producers) run by `stop()`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { mintDevToken, type Role } from "@rdm/auth";
import { startChangeService } from "@rdm/change";
import { startConfigurationService } from "@rdm/configuration";
import { ReferenceExecutor, startDeploymentService } from "@rdm/deployment";
import { startGateway } from "@rdm/gateway";
import type { GrpcClient } from "@rdm/grpc";
import { CHANGE_EVENTS_TOPIC, createKafka, createProducer, publishEvents, RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ChangeImpact, ChangeType, ChangeUrgency } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import type { ChangeService, RaiseChangeRequestSchema } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import type { TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import {
  ReleaseApprovalGrantedSchema,
  ReleaseChangeRequestLinkedSchema,
  ReleasePhaseAdvancedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { startReleaseService } from "@rdm/release";
import type { RunningService } from "@rdm/runtime";
import {
  authorizedChangeEvents,
  createTestDatabase,
  PublishedStreams,
  testConsumerTimings,
  testKafkaBrokers,
  testTopicPrefix,
  uniqueId,
} from "@rdm/testkit";

export type Component = "release" | "change" | "configuration" | "deployment" | "gateway";

export interface StartOptions {
  /** Reuse this database instead of creating one (e.g. a second gateway on the same views). */
  databaseUrl?: string;
  /** The consumer group; a unique one by default. */
  group?: string;
  /** The port to serve on (a restart keeps the one its clients know); any free one by default. */
  port?: number;
  /** Extra or overriding environment variables. */
  env?: Record<string, string>;
}

export interface StartedService {
  /** `127.0.0.1:<port>`, for createGrpcClient. */
  address: string;
  port: number;
  databaseUrl: string;
  /** The running service's pool, store and logger, for tests that look inside. */
  context: RunningService["context"];
  stop(): Promise<void>;
}

export interface StartedGateway {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  port: number;
  databaseUrl: string;
  stop(): Promise<void>;
}

/** Where the built services live, for `spawnService`. */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const session = String(testConsumerTimings.sessionTimeout);

/** Each component's variables for its consumer group and its session timeout. */
const CONSUMER_ENV: Record<Component, { group: string; session: string }> = {
  release: { group: "RELEASE_CONSUMER_GROUP", session: "RELEASE_CONSUMER_SESSION_TIMEOUT_MS" },
  change: { group: "CHANGE_CONSUMER_GROUP", session: "CHANGE_CONSUMER_SESSION_TIMEOUT_MS" },
  configuration: { group: "CONFIGURATION_CONSUMER_GROUP", session: "CONFIGURATION_CONSUMER_SESSION_TIMEOUT_MS" },
  deployment: { group: "DEPLOYMENT_CONSUMER_GROUP", session: "DEPLOYMENT_CONSUMER_SESSION_TIMEOUT_MS" },
  gateway: { group: "GATEWAY_CONSUMER_GROUP", session: "GATEWAY_CONSUMER_SESSION_TIMEOUT_MS" },
};

const START = {
  release: (env: NodeJS.ProcessEnv) => startReleaseService(env),
  change: startChangeService,
  configuration: startConfigurationService,
  deployment: startDeploymentService,
} as const;

/** A platform of one test file's own: its topics, its secret, its components and their cleanup. */
export function e2eStack(name: string) {
  const secret = randomUUID() + randomUUID();
  const topicPrefix = testTopicPrefix(name);
  const stops: (() => Promise<unknown>)[] = [];
  const children = new Set<ChildProcess>();
  const label = name.replace(/[^a-z0-9]+/gi, "_");

  /** The environment of `component`: the shared broker, this stack's topics, secret and a unique group. */
  async function env(
    component: Component,
    options: { databaseUrl: string; port: number; group?: string; env?: Record<string, string> },
  ): Promise<Record<string, string>> {
    const consumer = CONSUMER_ENV[component];
    return {
      DATABASE_URL: options.databaseUrl,
      KAFKA_BROKERS: (await testKafkaBrokers()).join(","),
      KAFKA_TOPIC_PREFIX: topicPrefix,
      AUTH_JWT_SECRET: secret,
      LOG_LEVEL: "warn",
      [component === "gateway" ? "HTTP_PORT" : "GRPC_PORT"]: String(options.port),
      [consumer.group]: options.group ?? uniqueId(`${name}-${component}`),
      [consumer.session]: session,
      // A port of its own for /metrics: the default ones are a running `./rdm up`'s, and two
      // processes of one component in parallel test files would meet there.
      METRICS_PORT: "0",
      ...options.env,
    };
  }

  /** The database `options` names, else a new one, dropped by stop() after the components. */
  async function databaseFor(component: Component, options: StartOptions): Promise<string> {
    if (options.databaseUrl) return options.databaseUrl;
    const db = await createTestDatabase(`${label}_${component}`);
    stops.push(db.drop);
    return db.url;
  }

  async function service(component: Exclude<Component, "gateway">, options: StartOptions = {}) {
    const databaseUrl = await databaseFor(component, options);
    const running = await START[component](await env(component, { port: 0, ...options, databaseUrl }));
    stops.push(() => running.stop());
    const started: StartedService = {
      address: `127.0.0.1:${running.port}`,
      port: running.port,
      databaseUrl,
      context: running.context,
      stop: () => running.stop(),
    };
    return started;
  }

  /** A token the started components accept; valid long enough for the slowest e2e file. */
  const mintToken = (subject: string, roles: Role[], groups: string[] = []) =>
    mintDevToken({ subject, roles, groups, secret, issuer: "rdm", audience: "rdm", expiresIn: "30m" });

  return {
    topicPrefix,
    secret,
    env,
    /** A new database for `component`, dropped by stop(). */
    database: (component: Component) => databaseFor(component, {}),
    release: (options?: StartOptions) => service("release", options),
    change: (options?: StartOptions) => service("change", options),
    configuration: (options?: StartOptions) => service("configuration", options),
    deployment: (options?: StartOptions) => service("deployment", options),
    async gateway(options: StartOptions = {}): Promise<StartedGateway> {
      const databaseUrl = await databaseFor("gateway", options);
      const running = await startGateway(await env("gateway", { port: 0, ...options, databaseUrl }));
      stops.push(() => running.stop());
      return { url: running.url, port: running.port, databaseUrl, stop: () => running.stop() };
    },
    token: mintToken,
    /** A reference executor for `environments` of `deployment`, closed (and its loop stopped) by stop(). */
    async executor(
      deployment: Pick<StartedService, "address">,
      options: { environments: string[]; command: string; poll?: boolean },
    ): Promise<ReferenceExecutor> {
      const executor = new ReferenceExecutor({
        address: deployment.address,
        token: await mintToken("executor", ["executor"]),
        executorId: uniqueId(`${name}-executor`),
        environments: options.environments,
        labels: [],
        leaseSeconds: 30,
        action: { command: options.command },
      });
      // Polled briefly: a test waits on the effect of each step, not on a timer.
      const running = options.poll ? executor.run({ pollMs: 50, maxPollMs: 200 }) : undefined;
      stops.push(async () => {
        executor.stop();
        await running;
        executor.close();
      });
      return executor;
    },
    /** A connected producer on the shared broker, disconnected by stop(). */
    async producer(): Promise<ReturnType<typeof createProducer>> {
      const kafka = createKafka({
        brokers: await testKafkaBrokers(),
        clientId: uniqueId(name),
        logger: createLogger("e2e", "warn"),
      });
      const producer = createProducer(kafka);
      await producer.connect();
      stops.push(() => producer.disconnect());
      return producer;
    },
    /** GET `path` on the gateway with `bearer`; the body when the answer is 200. */
    async getJson(gatewayUrl: string, path: string, bearer: string) {
      const response = await fetch(`${gatewayUrl}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
      return { status: response.status, body: response.status === 200 ? await response.json() : undefined };
    },
    /** Starts `component` as a process of its own (its built main), its stderr prefixed on ours. */
    spawnService(component: Component, childEnv: Record<string, string>): ChildProcess {
      const child = spawn(process.execPath, [path.join(root, "services", component, "dist/main.js")], {
        env: { ...process.env, ...childEnv },
        stdio: ["ignore", "ignore", "pipe"],
      });
      children.add(child);
      child.stderr?.on("data", (chunk) => process.stderr.write(`[${component}] ${chunk}`));
      child.once("exit", () => children.delete(child));
      return child;
    },
    onStop(stop: () => Promise<unknown> | unknown) {
      stops.push(async () => stop());
    },
    /** Stops everything started, newest first; kills processes still running. */
    async stop() {
      for (const child of children) child.kill("SIGKILL");
      for (const stop of stops.reverse()) await stop();
      stops.length = 0;
    },
  };
}

export type E2eStack = ReturnType<typeof e2eStack>;

/** Kills `child` and resolves once it exited. */
export const kill = (child: ChildProcess) =>
  new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });

/**
 * RegisterRelease with a bare grpc-js client, which (unlike @rdm/grpc's client) sends no
 * traceparent: the server span starts the trace. Resolves with the new release's id.
 */
export function registerWithoutTrace(address: string, token: string, title: string): Promise<string> {
  const method = ReleaseService.method.registerRelease;
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${token}`);
  const request = create(method.input, { requestId: randomUUID(), title, type: ReleaseType.MINOR, owner: "tess" });
  return new Promise<string>((resolve, reject) => {
    client.makeUnaryRequest(
      `/${method.parent.typeName}/${method.name}`,
      (message: typeof request) => Buffer.from(toBinary(method.input, message)),
      (bytes: Buffer) => fromBinary(method.output, bytes),
      request,
      metadata,
      (error, response) => (error || !response?.release ? reject(error) : resolve(response.release.releaseId)),
    );
  }).finally(() => client.close());
}

/**
 * Publishes, as the release and change services would, that `releaseId` is approved and in its
 * deployment phase, linked to an authorized change scheduled around now (a production deployment
 * needs one): the facts the deployment gates read (their own lifecycles are tested elsewhere).
 */
export async function publishReleaseInDeployment(
  producer: ReturnType<typeof createProducer>,
  topicPrefix: string,
  releaseId: string,
): Promise<void> {
  const streams = new PublishedStreams("rita");
  const changeRequestId = randomUUID();
  await publishEvents(
    producer,
    `${topicPrefix}${CHANGE_EVENTS_TOPIC}`,
    authorizedChangeEvents(streams, changeRequestId),
  );
  await publishEvents(producer, `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, [
    streams.event("rdm/release", ReleaseApprovalGrantedSchema, releaseId, { releaseId, quorumReached: true }),
    streams.event("rdm/release", ReleasePhaseAdvancedSchema, releaseId, {
      releaseId,
      fromPhase: ReleasePhase.APPROVAL,
      toPhase: ReleasePhase.DEPLOYMENT,
    }),
    streams.event("rdm/release", ReleaseChangeRequestLinkedSchema, releaseId, { releaseId, changeRequestId }),
  ]);
}

/** An artifact registered in the DML and verified against its checksum: what deployment gates accept. */
export async function verifiedArtifact(
  dml: GrpcClient<(typeof ConfigurationService)["method"]>,
  name: string,
  version: string,
): Promise<{ artifactId: string; name: string; version: string }> {
  const sha256 = createHash("sha256").update(`${name}@${version}`).digest("hex");
  const { artifact } = await dml.registerArtifact({
    requestId: randomUUID(),
    name,
    version,
    sha256,
    sizeBytes: 1n,
    mediaUri: `s3://media/${name}-${version}.tgz`,
  });
  const artifactId = artifact?.artifactId as string;
  await dml.verifyArtifact({ requestId: randomUUID(), artifactId, sha256 });
  return { artifactId, name, version };
}

type ChangeClient = GrpcClient<(typeof ChangeService)["method"]>;

/**
 * A normal change raised by `manager` with `raise`, assessed (`assessment`) to need one approval
 * from each of `approvers`, approved by them and scheduled in `window`; its id.
 */
export async function authorizedChange(
  manager: { change: ChangeClient },
  approvers: { change: ChangeClient }[],
  raise: Omit<MessageInitShape<typeof RaiseChangeRequestSchema>, "$typeName" | "requestId" | "type">,
  window: MessageInitShape<typeof TimeWindowSchema>,
  assessment: { impact: ChangeImpact; urgency: ChangeUrgency } = {
    impact: ChangeImpact.MEDIUM,
    urgency: ChangeUrgency.MEDIUM,
  },
): Promise<string> {
  const { change } = await manager.change.raiseChange({ requestId: randomUUID(), type: ChangeType.NORMAL, ...raise });
  const changeRequestId = change?.changeRequestId as string;
  await manager.change.submitChange({ requestId: randomUUID(), changeRequestId });
  await manager.change.assessChange({
    requestId: randomUUID(),
    changeRequestId,
    ...assessment,
    requiredApprovals: approvers.length,
  });
  for (const approver of approvers)
    await approver.change.approveChange({ requestId: randomUUID(), changeRequestId, comment: "ok" });
  await manager.change.scheduleChange({ requestId: randomUUID(), changeRequestId, window });
  return changeRequestId;
}
