// The four services of release-to-production.test.ts on their own databases and topics, gRPC
// clients for any subject, the reference executor, and a reader of every topic from outside.
// Kept apart from the test so a shared end-to-end harness can replace it.
import { createRegistry, fromBinary, type Message } from "@bufbuild/protobuf";
import { mintDevToken, type Role } from "@rdm/auth";
import { startChangeService } from "@rdm/change";
import { startConfigurationService } from "@rdm/configuration";
import { ReferenceExecutor, startDeploymentService } from "@rdm/deployment";
import { createGrpcClient } from "@rdm/grpc";
import { EVENT_SOURCES, type EventSource, eventsTopic, fromKafkaMessage } from "@rdm/messaging";
import { ChangeService } from "@rdm/proto/gen/rdm/change/v1/change_service_pb.js";
import { file_rdm_change_v1_events } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { ConfigurationService } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { file_rdm_configuration_v1_events } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { file_rdm_deployment_v1_events } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import { file_rdm_release_v1_events } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { startReleaseService } from "@rdm/release";
import type { RunningService } from "@rdm/runtime";
import { createTestDatabase, testConsumerTimings, testKafkaBrokers, testTopicPrefix, uniqueId } from "@rdm/testkit";
import { Kafka, logLevel } from "kafkajs";

const SERVICES = {
  release: ReleaseService,
  change: ChangeService,
  configuration: ConfigurationService,
  deployment: DeploymentService,
};
const registry = createRegistry(
  file_rdm_release_v1_events,
  file_rdm_change_v1_events,
  file_rdm_configuration_v1_events,
  file_rdm_deployment_v1_events,
);

export type Clients = {
  [K in keyof typeof SERVICES]: ReturnType<typeof createGrpcClient<(typeof SERVICES)[K]["method"]>>;
};

/** One event as an outside consumer of the topics sees it. */
export interface Published {
  source: EventSource;
  subject: string;
  type: string;
  id: string;
  correlationId: string;
  causationId: string;
}

export interface RunningSystem {
  clients(subject: string, roles: Role[], groups?: string[]): Promise<Clients>;
  /** A reference executor for every environment: verification fails for checkout 1.1.0 in production. */
  executor: ReferenceExecutor;
  /** What the topic reader has read so far, in partition order per subject. */
  published(): Published[];
  stop(): Promise<void>;
}

/** Fails verification in production of any package holding checkout 1.1.0 (its error rate is too high). */
const EXECUTOR_COMMAND = `if [ "$RDM_STEP_KIND" = VERIFY ] && [ "$RDM_ENVIRONMENT" = production ]; then
  case "$RDM_ARTIFACTS" in *'"1.1.0"'*) echo "error rate 7% above 2%"; exit 1;; esac
fi`;

export async function startSystem(label: string): Promise<RunningSystem> {
  const secret = `${crypto.randomUUID()}${crypto.randomUUID()}`;
  const brokers = await testKafkaBrokers();
  const topicPrefix = testTopicPrefix(label);
  const session = String(testConsumerTimings.sessionTimeout);
  const common = { KAFKA_BROKERS: brokers.join(","), KAFKA_TOPIC_PREFIX: topicPrefix, AUTH_JWT_SECRET: secret };
  const env = async (service: string, more: Record<string, string>) => ({
    ...common,
    DATABASE_URL: (await createTestDatabase(`${label}_${service}`)).url,
    GRPC_PORT: "0",
    LOG_LEVEL: "warn",
    ...more,
  });
  // Started together: each waits for its consumer groups to form.
  const running: Record<keyof typeof SERVICES, RunningService> = Object.fromEntries(
    await Promise.all([
      env("release", {
        RELEASE_CONSUMER_GROUP: uniqueId(`${label}-release`),
        RELEASE_CONSUMER_SESSION_TIMEOUT_MS: session,
      }).then(async (e) => ["release", await startReleaseService(e)]),
      env("change", {
        CHANGE_CONSUMER_GROUP: uniqueId(`${label}-change`),
        CHANGE_CONSUMER_SESSION_TIMEOUT_MS: session,
      }).then(async (e) => ["change", await startChangeService(e)]),
      env("configuration", {
        CONFIGURATION_CONSUMER_GROUP: uniqueId(`${label}-configuration`),
        KAFKA_SESSION_TIMEOUT_MS: session,
      }).then(async (e) => ["configuration", await startConfigurationService(e)]),
      env("deployment", {
        DEPLOYMENT_CONSUMER_GROUP: uniqueId(`${label}-deployment`),
        DEPLOYMENT_CONSUMER_SESSION_TIMEOUT_MS: session,
      }).then(async (e) => ["deployment", await startDeploymentService(e)]),
    ]),
  );
  const token = (subject: string, roles: Role[], groups: string[] = []) =>
    mintDevToken({ subject, roles, groups, secret, issuer: "rdm", audience: "rdm", expiresIn: "30m" });

  const reader = new Kafka({ brokers, clientId: uniqueId("reader"), logLevel: logLevel.NOTHING }).consumer({
    groupId: uniqueId(`${label}-reader`),
  });
  const published: Published[] = [];
  await reader.connect();
  await reader.subscribe({ topics: EVENT_SOURCES.map((s) => `${topicPrefix}${eventsTopic(s)}`), fromBeginning: true });
  await reader.run({
    eachMessage: async ({ topic, message }) => {
      const event = fromKafkaMessage({ headers: message.headers ?? {}, value: message.value });
      const schema = registry.getMessage(event.type);
      const metadata = schema
        ? (fromBinary(schema, event.data) as Message & { metadata?: EventMetadata }).metadata
        : undefined;
      published.push({
        source: EVENT_SOURCES.find((s) => topic.endsWith(eventsTopic(s))) as EventSource,
        subject: event.subject,
        type: event.type,
        id: event.id,
        correlationId: metadata?.correlationId ?? "",
        causationId: metadata?.causationId ?? "",
      });
    },
  });

  const executor = new ReferenceExecutor({
    address: `127.0.0.1:${running.deployment.port}`,
    token: await token("ref-executor", ["executor"]),
    executorId: uniqueId("ref-executor"),
    environments: ["test", "production"],
    labels: [],
    leaseSeconds: 30,
    action: { command: EXECUTOR_COMMAND },
  });

  return {
    async clients(subject, roles, groups = []) {
      const options = { token: await token(subject, roles, groups) };
      const at = (name: keyof typeof SERVICES) => `127.0.0.1:${running[name].port}`;
      return {
        release: createGrpcClient(ReleaseService, at("release"), options),
        change: createGrpcClient(ChangeService, at("change"), options),
        configuration: createGrpcClient(ConfigurationService, at("configuration"), options),
        deployment: createGrpcClient(DeploymentService, at("deployment"), options),
      };
    },
    executor,
    published: () => [...published],
    async stop() {
      executor.close();
      await reader.disconnect();
      for (const service of Object.values(running)) await service.stop();
    },
  };
}
