// Starts the release service in-process on a fresh database with a controllable clock, and
// gives tests gRPC clients for any subject and roles.
import { randomUUID } from "node:crypto";
import { mintDevToken, type Role } from "@rdm/auth";
import { createGrpcClient, type GrpcClient } from "@rdm/grpc";
import { NotificationService } from "@rdm/proto/gen/rdm/notification/v1/notification_service_pb.js";
import { ReleaseType, RiskLevel } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import type { RunningService } from "@rdm/runtime";
import { createTestDatabase, testConsumerTimings, testKafkaBrokers, testTopicPrefix, uniqueId } from "@rdm/testkit";
import { startReleaseService } from "../src/service.js";

export const secret = randomUUID() + randomUUID();

/** A clock the test moves by hand; the service reads time only through it. */
export class TestClock {
  constructor(public current = new Date()) {}
  now = () => this.current;
  advance(ms: number) {
    this.current = new Date(this.current.getTime() + ms);
  }
}

export type ReleaseClient = GrpcClient<(typeof ReleaseService)["method"]>;
export type NotificationClient = GrpcClient<(typeof NotificationService)["method"]>;

export interface ClientOptions {
  /** The token's groups claim, e.g. ["cab"] for an approver on the change advisory board. */
  groups?: string[];
  /** The instance to call; the first one by default. */
  instance?: RunningService;
}

export interface Harness {
  databaseUrl: string;
  brokers: string[];
  /** The harness's own KAFKA_TOPIC_PREFIX: publish to `${topicPrefix}rdm.change.events.v1`. */
  topicPrefix: string;
  /** RELEASE_CONSUMER_GROUP: its consumers' groups are named after it (e.g. `<group>.notifier`). */
  consumerGroup: string;
  clock: TestClock;
  instances: RunningService[];
  /** Starts another instance on the same database (a replica, or a restart). */
  startInstance(extraEnv?: Record<string, string>): Promise<RunningService>;
  client(subject: string, roles: Role[], options?: ClientOptions): Promise<ReleaseClient>;
  /** A client of the notification service (served by the release process), on the first instance. */
  notificationClient(subject: string, roles: Role[]): Promise<NotificationClient>;
  stop(): Promise<void>;
}

const tokenOf = (subject: string, roles: Role[], groups?: string[]) =>
  mintDevToken({
    subject,
    roles,
    ...(groups ? { groups } : {}),
    secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "10m",
  });

export async function startHarness(extraEnv: Record<string, string> = {}): Promise<Harness> {
  const brokers = await testKafkaBrokers();
  const db = await createTestDatabase("release_it");
  const clock = new TestClock();
  const group = uniqueId("release-it");
  const topicPrefix = testTopicPrefix("release-it");
  const instances: RunningService[] = [];
  const startInstance = async (more: Record<string, string> = {}) => {
    const running = await startReleaseService(
      {
        DATABASE_URL: db.url,
        KAFKA_BROKERS: brokers.join(","),
        KAFKA_TOPIC_PREFIX: topicPrefix,
        AUTH_JWT_SECRET: secret,
        GRPC_PORT: "0",
        LOG_LEVEL: "warn",
        RELEASE_CONSUMER_GROUP: group,
        RELEASE_CONSUMER_SESSION_TIMEOUT_MS: String(testConsumerTimings.sessionTimeout),
        RELEASE_DEADLINE_POLL_MS: "50",
        ...extraEnv,
        ...more,
      },
      { clock: clock.now },
    );
    instances.push(running);
    return running;
  };
  await startInstance();
  return {
    databaseUrl: db.url,
    brokers,
    topicPrefix,
    consumerGroup: group,
    clock,
    instances,
    startInstance,
    async client(subject, roles, { groups, instance = instances[0] } = {}) {
      const token = await tokenOf(subject, roles, groups);
      return createGrpcClient(ReleaseService, `127.0.0.1:${instance?.port}`, { token });
    },
    async notificationClient(subject, roles) {
      const token = await tokenOf(subject, roles);
      return createGrpcClient(NotificationService, `127.0.0.1:${instances[0]?.port}`, { token });
    },
    async stop() {
      for (const instance of instances.reverse()) await instance.stop();
    },
  };
}

export const registration = (overrides: Record<string, unknown> = {}) => ({
  requestId: randomUUID(),
  title: "Payments 4.2",
  description: "Quarterly payments release",
  type: ReleaseType.MAJOR,
  category: "payments",
  owner: "olivia",
  coordinator: "carl",
  stakeholders: ["sre-payments"],
  risk: RiskLevel.MEDIUM,
  ...overrides,
});

export const req = () => ({ requestId: randomUUID() });
