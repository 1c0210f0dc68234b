// The deployment service under test: started in-process on a fresh database and its own topics,
// with a producer for the upstream facts (release, change and configuration events) it consumes.
import { randomUUID } from "node:crypto";
import {
  create,
  createRegistry,
  type DescMessage,
  fromBinary,
  type Message,
  type MessageInitShape,
} from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { status } from "@grpc/grpc-js";
import { mintDevToken, type Role } from "@rdm/auth";
import { createGrpcClient, errorDetails, type GrpcClient } from "@rdm/grpc";
import {
  createKafka,
  createProducer,
  DEPLOYMENT_EVENTS_TOPIC,
  type EventSource,
  eventsTopic,
  publishEvents,
} from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ChangeType, FreezeScopeSchema } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { FreezeWindowDeclaredSchema, FreezeWindowLiftedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  ArtifactQuarantinedSchema,
  ArtifactRegisteredSchema,
  ArtifactVerifiedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import {
  DeployedArtifactSchema,
  type DeploymentStrategy,
  type DeploymentStrategyKind,
  DeploymentStrategySchema,
  file_rdm_deployment_v1_events,
  TargetGroupSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  ReleaseApprovalGrantedSchema,
  ReleaseChangeRequestLinkedSchema,
  ReleasePhaseAdvancedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type { RunningService } from "@rdm/runtime";
import {
  authorizedChangeEvents,
  createTestDatabase,
  PublishedStreams,
  testKafkaBrokers,
  testTopicPrefix,
  uniqueId,
  waitFor,
} from "@rdm/testkit";
import { type Consumer, Kafka, logLevel, type Producer } from "kafkajs";
import { startDeploymentService } from "../src/service.js";

const registry = createRegistry(file_rdm_deployment_v1_events);
/** A decoded event of rdm.deployment.events.v1 (fields read by name in the tests). */
export type DeploymentEventMessage = Message & Record<string, unknown>;

export const secret = randomUUID() + randomUUID();
export const rid = () => ({ requestId: randomUUID() });

export class Harness {
  service!: RunningService;
  producer!: Producer;
  brokers: string[] = [];
  databaseUrl = "";
  readonly topicPrefix: string;
  constructor(label: string) {
    this.topicPrefix = testTopicPrefix(label);
  }

  /** The service's environment: its database, topics and secret (a replica started with it shares them). */
  serviceEnv() {
    return this.env();
  }

  private env() {
    return {
      DATABASE_URL: this.databaseUrl,
      KAFKA_BROKERS: this.brokers.join(","),
      KAFKA_TOPIC_PREFIX: this.topicPrefix,
      AUTH_JWT_SECRET: secret,
      GRPC_PORT: "0",
      LOG_LEVEL: "warn",
      DEPLOYMENT_CONSUMER_GROUP: uniqueId("deployment-it"),
      DEPLOYMENT_CONSUMER_SESSION_TIMEOUT_MS: "6000",
      DEPLOYMENT_LEASE_SWEEP_MS: "200",
    };
  }

  async start(label: string) {
    this.brokers = await testKafkaBrokers();
    this.databaseUrl = (await createTestDatabase(label)).url;
    await this.restart();
    const kafka = createKafka({
      brokers: this.brokers,
      clientId: uniqueId(label),
      logger: createLogger("test", "warn"),
    });
    this.producer = createProducer(kafka);
    await this.producer.connect();
  }

  /** Starts the service (again) on the same database and topics; on `port` when given (0: any). */
  async restart(port = 0) {
    this.service = await startDeploymentService({ ...this.env(), GRPC_PORT: String(port) });
  }

  /**
   * Reads this service's topic from the start like an outside consumer; `events` gathers every
   * decoded deployment event by deployment id (the Kafka key), in partition order.
   */
  async readOwnTopic() {
    const kafka = new Kafka({ brokers: this.brokers, clientId: uniqueId("reader"), logLevel: logLevel.NOTHING });
    this.reader = kafka.consumer({ groupId: uniqueId("reader") });
    await this.reader.connect();
    await this.reader.subscribe({ topic: `${this.topicPrefix}${DEPLOYMENT_EVENTS_TOPIC}`, fromBeginning: true });
    await this.reader.run({
      eachMessage: async ({ message }) => {
        const type = String(message.headers?.ce_type ?? "");
        const schema = registry.getMessage(type);
        if (!schema || !message.key || !message.value) return;
        const key = message.key.toString();
        const list = this.published.get(key) ?? [];
        list.push(fromBinary(schema, message.value) as DeploymentEventMessage);
        this.published.set(key, list);
      },
    });
  }

  reader: Consumer | undefined;
  readonly published = new Map<string, DeploymentEventMessage[]>();
  /** The events publish makes, as their services would. */
  private readonly upstream = new PublishedStreams();

  async stop() {
    await this.reader?.disconnect();
    await this.producer?.disconnect();
    await this.service?.stop();
  }

  async client(subject: string, roles: Role[], groups: string[] = []) {
    return createGrpcClient(DeploymentService, `127.0.0.1:${this.service.port}`, {
      token: await this.token(subject, roles, groups),
    });
  }

  /** A token the service takes, for `subject` with `roles` (and approval `groups`). */
  token(subject: string, roles: Role[], groups: string[] = []) {
    return mintDevToken({
      subject,
      roles,
      groups,
      secret,
      issuer: "rdm",
      audience: "rdm",
      expiresIn: "10m",
    });
  }

  async publish<S extends DescMessage>(
    service: EventSource,
    schema: S,
    subject: string,
    init: Omit<MessageInitShape<S>, "metadata" | "$typeName">,
  ): Promise<string> {
    const event = this.upstream.event(`rdm/${service}`, schema, subject, init);
    await publishEvents(this.producer, `${this.topicPrefix}${eventsTopic(service)}`, [event]);
    return event.id;
  }

  /** Resolves once the service's consumers handled the event (their marker), by id. */
  async handled(eventId: string) {
    const { pool } = this.service.context.store;
    await waitFor(
      async () => (await pool.query("SELECT 1 FROM rdm_handled_events WHERE event_id = $1", [eventId])).rowCount === 1,
      { timeoutMs: 30_000, description: `event ${eventId} handled` },
    );
  }

  /**
   * The release is approved and in its deployment phase, as the release service would say; unless
   * `covered` is false, linked to an authorized change scheduled around now (production needs one):
   * its id.
   */
  async releaseReady(releaseId: string, { covered = true } = {}) {
    await this.publish("release", ReleaseApprovalGrantedSchema, releaseId, { releaseId, quorumReached: true });
    await this.publish("release", ReleasePhaseAdvancedSchema, releaseId, {
      releaseId,
      fromPhase: ReleasePhase.BUILD_AND_TEST,
      toPhase: ReleasePhase.DEPLOYMENT,
    });
    return covered ? await this.coveredByChange(releaseId) : undefined;
  }

  /** Links the release to a new authorized change scheduled around now, once the service has it. */
  async coveredByChange(releaseId: string) {
    const changeRequestId = randomUUID();
    const scheduled = await this.change(changeRequestId);
    // Consumed before the tests' own waits, which look for the release's and artifacts' facts.
    await Promise.all([this.handled(scheduled), this.linkChange(releaseId, changeRequestId)]);
    return changeRequestId;
  }

  /** The release links the change (as the release topic tells), once the service has it. */
  async linkChange(releaseId: string, changeRequestId: string) {
    await this.handled(
      await this.publish("release", ReleaseChangeRequestLinkedSchema, releaseId, { releaseId, changeRequestId }),
    );
  }

  /** An artifact registered in the DML as api@`version` (as `artifact()` plans it), then its verdict. */
  async artifact(
    artifactId: string,
    verdict: "verified" | "quarantined" | "registered" = "verified",
    version = "1.0.0",
    name = "api",
  ) {
    await this.publish("configuration", ArtifactRegisteredSchema, artifactId, { artifactId, name, version });
    if (verdict === "verified") await this.publish("configuration", ArtifactVerifiedSchema, artifactId, { artifactId });
    if (verdict === "quarantined")
      await this.publish("configuration", ArtifactQuarantinedSchema, artifactId, { artifactId });
  }

  /**
   * A deployment planned in `environment` of a fresh release, approved and in its deployment
   * phase, with a verified artifact: their events are published, not necessarily consumed yet.
   */
  async plannedDeployment(
    deployer: GrpcClient<(typeof DeploymentService)["method"]>,
    strategy: DeploymentStrategy,
    environment: string,
    artifactName = "api",
  ) {
    const releaseId = randomUUID();
    const artifactId = randomUUID();
    const version = `1.0.0-${releaseId.slice(0, 8)}`;
    await this.releaseReady(releaseId);
    await this.artifact(artifactId, "verified", version, artifactName);
    const { deployment } = await deployer.planDeployment({
      ...rid(),
      releaseId,
      environment,
      artifacts: [artifact(artifactId, version, artifactName)],
      strategy,
    });
    return { deploymentId: deployment?.deploymentId as string, releaseId, artifactId };
  }

  /** A fresh environment (rank 1: no previous one) unless given, and a started deployment of a fresh release. */
  async startedDeployment(
    deployer: GrpcClient<(typeof DeploymentService)["method"]>,
    strategy: DeploymentStrategy,
    targetGroups = groups({ rest: [uniqueId("ci"), uniqueId("ci")] }),
    existing?: { environment: string },
  ) {
    const environment = existing?.environment ?? uniqueId("env");
    if (!existing) {
      await deployer.registerEnvironment({
        ...rid(),
        environment: { name: environment, promotionRank: 1, targetGroups, executorLabels: [] },
      });
    }
    const { deploymentId, releaseId, artifactId } = await this.plannedDeployment(deployer, strategy, environment);
    // The gates read what the consumers have seen so far: retry until the facts have arrived.
    await waitFor(() => deployer.startDeployment({ ...rid(), deploymentId }), {
      timeoutMs: 30_000,
      description: "gates met once the upstream facts are consumed",
    });
    return { deploymentId, environment, releaseId, artifactId };
  }

  /**
   * A freeze window of the change calendar for two hours from `hours` from now (default: around
   * now); its id. `consumed`: resolves once the service handled the declaration.
   */
  async freezeWindow(
    scope: { all?: boolean; ciIds?: string[]; environments?: string[] },
    options: { hours?: number; id?: string; consumed?: boolean } = {},
  ) {
    const { hours = -1, id = randomUUID() } = options;
    const window = create(TimeWindowSchema, {
      start: timestampFromDate(new Date(Date.now() + hours * 3_600_000)),
      end: timestampFromDate(new Date(Date.now() + (hours + 2) * 3_600_000)),
    });
    const declared = await this.publish("change", FreezeWindowDeclaredSchema, id, {
      freezeWindowId: id,
      name: "blackout",
      reason: "quarter end",
      window,
      scope: create(FreezeScopeSchema, scope),
    });
    if (options.consumed) await this.handled(declared);
    return id;
  }

  async liftFreezeWindow(freezeWindowId: string) {
    await this.publish("change", FreezeWindowLiftedSchema, freezeWindowId, { freezeWindowId, reason: "over" });
  }

  /** An authorized change scheduled around now; the id of its last event. */
  async change(changeId: string, type = ChangeType.NORMAL) {
    const events = authorizedChangeEvents(this.upstream, changeId, type);
    await publishEvents(this.producer, `${this.topicPrefix}${eventsTopic("change")}`, events);
    return events.at(-1)?.id as string;
  }
}

export const artifact = (artifactId: string, version = "1.0.0", name = "api") =>
  create(DeployedArtifactSchema, { artifactId, name, version });

export const groups = (spec: Record<string, string[]>) =>
  Object.entries(spec).map(([name, ciIds]) => create(TargetGroupSchema, { name, ciIds }));

export const strategyOf = (kind: DeploymentStrategyKind, init: object = {}) =>
  create(DeploymentStrategySchema, { kind, ...init });

/** A FAILED_PRECONDITION refusal: the rules of its precondition violations. */
export async function preconditionRules(call: Promise<unknown>): Promise<string[]> {
  const details = errorDetails(
    await call.then(
      () => new Error("expected FAILED_PRECONDITION"),
      (e: unknown) => e,
    ),
  );
  expect(details.code).toBe(status.FAILED_PRECONDITION);
  return (details.preconditionFailure?.violations ?? []).map((violation) => violation.type);
}

/** A FAILED_PRECONDITION refusal: the subjects of its violations of `rule`. */
export async function preconditionSubjects(call: Promise<unknown>, rule: string): Promise<string[]> {
  const details = errorDetails(
    await call.then(
      () => new Error("expected FAILED_PRECONDITION"),
      (e: unknown) => e,
    ),
  );
  expect(details.code).toBe(status.FAILED_PRECONDITION);
  const violations = details.preconditionFailure?.violations ?? [];
  return violations.filter((violation) => violation.type === rule).map((violation) => violation.subject);
}

export async function refusedWith(call: Promise<unknown>, code: status): Promise<string> {
  const details = errorDetails(
    await call.then(
      () => new Error(`expected ${status[code]}`),
      (e: unknown) => e,
    ),
  );
  expect(details.code).toBe(code);
  return details.message;
}

export { uniqueId, waitFor };
