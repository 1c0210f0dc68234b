// The executor protocol under load: 16 executors claim, report and complete the steps of many
// deployments at once. Prints claims/s, reports/s, the claim latency and the time from a
// deployment's last target report to its outcome event on Kafka. No assertions.
//   node bench/dist/deployment.js [deployments = 64] [targets per deployment = 8]
import { randomUUID } from "node:crypto";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { mintDevToken } from "@rdm/auth";
import { startDeploymentService } from "@rdm/deployment";
import { createGrpcClient } from "@rdm/grpc";
import { createKafka, createProducer, publishEvents } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ArtifactRegisteredSchema, ArtifactVerifiedSchema } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { DeploymentState } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { DeploymentService } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import {
  DeploymentStrategyKind,
  DeploymentSucceededSchema,
  StepKind,
  TargetOutcome,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import {
  ReleaseApprovalGrantedSchema,
  ReleaseChangeRequestLinkedSchema,
  ReleasePhaseAdvancedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { authorizedChangeEvents, createTestDatabase, PublishedStreams } from "@rdm/testkit";
import { Kafka, logLevel } from "kafkajs";
import { ms, percentile, runBenchmark, startBenchServers } from "./support.js";

const EXECUTORS = 16;
type Client = ReturnType<typeof createGrpcClient<(typeof DeploymentService)["method"]>>;

/** Upstream facts (release approved, artifact verified, change authorized) as their services would publish them. */
const facts = new PublishedStreams("bench");

async function publishFact<S extends DescMessage>(
  producer: ReturnType<typeof createProducer>,
  service: string,
  schema: S,
  subject: string,
  init: Omit<MessageInitShape<S>, "metadata" | "$typeName">,
) {
  await publishEvents(producer, `rdm.${service}.events.v1`, [facts.event(`rdm/${service}`, schema, subject, init)]);
}

/** When each deployment's DeploymentSucceeded arrives on Kafka (a reader polling every 20 ms). */
async function watchOutcomes(brokers: string[], seenAt: Map<string, number>) {
  const kafka = new Kafka({ brokers, clientId: `bench-${randomUUID()}`, logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `bench-${randomUUID()}`, maxWaitTimeInMs: 20 });
  await consumer.connect();
  await consumer.subscribe({ topic: "rdm.deployment.events.v1", fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      if (String(message.headers?.ce_type ?? "") === DeploymentSucceededSchema.typeName && message.key) {
        seenAt.set(message.key.toString(), performance.now());
      }
    },
  });
  return consumer;
}

/** Plans and starts one ROLLING deployment (batches of 2) per environment; retries until the gates see the facts. */
async function startDeployments(client: Client, count: number, targets: number, releaseId: string, artifactId: string) {
  const ids: string[] = [];
  for (let e = 0; e < count; e++) {
    const environment = `bench-${e}`;
    const ciIds = Array.from({ length: targets }, (_, t) => `${environment}-host-${t}`);
    await client.registerEnvironment({
      requestId: randomUUID(),
      environment: { name: environment, promotionRank: 1, targetGroups: [{ name: "rest", ciIds }] },
    });
    const { deployment } = await client.planDeployment({
      requestId: randomUUID(),
      releaseId,
      environment,
      artifacts: [{ artifactId, name: "api", version: "1.0.0" }],
      strategy: { kind: DeploymentStrategyKind.ROLLING, batchSize: 2 },
    });
    ids.push(deployment?.deploymentId as string);
  }
  const deadline = Date.now() + 120_000;
  for (const deploymentId of ids) {
    for (;;) {
      const started = await client.startDeployment({ requestId: randomUUID(), deploymentId }).then(
        () => true,
        (error: unknown) => {
          if (Date.now() > deadline) throw error;
          return false;
        },
      );
      if (started) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
  return ids;
}

interface Tally {
  claimMs: number[];
  emptyClaims: number;
  reports: number;
  lastReportAt: Map<string, number>;
  succeeded: Set<string>;
}

/** One executor: claims until every deployment succeeded, reports each target, completes the step. */
async function executor(client: Client, id: string, total: number, tally: Tally) {
  const deadline = Date.now() + 600_000;
  while (tally.succeeded.size < total) {
    if (Date.now() > deadline) throw new Error(`${tally.succeeded.size}/${total} deployments succeeded in 10 minutes`);
    const t0 = performance.now();
    const { assignment } = await client.claimStep({ requestId: randomUUID(), executorId: id, leaseSeconds: 60 });
    if (!assignment?.step) {
      tally.emptyClaims++;
      await new Promise((resolve) => setTimeout(resolve, 5));
      continue;
    }
    tally.claimMs.push(performance.now() - t0);
    const lease = {
      deploymentId: assignment.deploymentId,
      stepIndex: assignment.step.index,
      fencingToken: assignment.fencingToken,
    };
    const verify = assignment.step.kind === StepKind.VERIFY;
    for (const ciId of assignment.step.targetCiIds) {
      await client.reportTargetProgress({
        requestId: randomUUID(),
        lease,
        ciId,
        outcome: TargetOutcome.SUCCEEDED,
        verifications: verify ? [{ check: "bench", passed: true }] : [],
      });
      tally.reports++;
    }
    if (verify) tally.lastReportAt.set(lease.deploymentId, performance.now());
    const { deployment } = await client.completeStep({ requestId: randomUUID(), lease });
    if (deployment?.state === DeploymentState.SUCCEEDED) tally.succeeded.add(lease.deploymentId);
  }
}

async function main() {
  const deployments = Number(process.argv[2] ?? 64);
  const targets = Number(process.argv[3] ?? 8);
  const { servers, secret, token } = await startBenchServers();
  const db = await createTestDatabase("bench_deployment");
  const service = await startDeploymentService({
    DATABASE_URL: db.url,
    KAFKA_BROKERS: servers.kafkaBrokers.join(","),
    AUTH_JWT_SECRET: secret,
    GRPC_PORT: "0",
    LOG_LEVEL: "error",
    DEPLOYMENT_CONSUMER_GROUP: `bench-${randomUUID()}`,
  });
  const address = `127.0.0.1:${service.port}`;
  const admin = createGrpcClient(DeploymentService, address, { token, retry: { maxAttempts: 5 } });
  const producer = createProducer(
    createKafka({ brokers: servers.kafkaBrokers, clientId: "bench", logger: createLogger("bench", "error") }),
  );
  await producer.connect();
  const releaseId = randomUUID();
  const artifactId = randomUUID();
  await publishFact(producer, "release", ReleaseApprovalGrantedSchema, releaseId, { releaseId, quorumReached: true });
  await publishFact(producer, "release", ReleasePhaseAdvancedSchema, releaseId, {
    releaseId,
    fromPhase: ReleasePhase.BUILD_AND_TEST,
    toPhase: ReleasePhase.DEPLOYMENT,
  });
  await publishFact(producer, "configuration", ArtifactRegisteredSchema, artifactId, {
    artifactId,
    name: "api",
    version: "1.0.0",
  });
  await publishFact(producer, "configuration", ArtifactVerifiedSchema, artifactId, { artifactId });
  // Each environment is production (nothing follows it): the release goes out under a change.
  const changeRequestId = randomUUID();
  await publishEvents(producer, "rdm.change.events.v1", authorizedChangeEvents(facts, changeRequestId));
  await publishFact(producer, "release", ReleaseChangeRequestLinkedSchema, releaseId, { releaseId, changeRequestId });
  const outcomeSeenAt = new Map<string, number>();
  const reader = await watchOutcomes(servers.kafkaBrokers, outcomeSeenAt);
  const ids = await startDeployments(admin, deployments, targets, releaseId, artifactId);

  const executorToken = await mintDevToken({
    subject: "bench-executor",
    roles: ["executor"],
    secret,
    issuer: "rdm",
    audience: "rdm",
    expiresIn: "1h",
  });
  const clients = Array.from({ length: EXECUTORS }, () =>
    createGrpcClient(DeploymentService, address, { token: executorToken, retry: { maxAttempts: 5 } }),
  );
  const tally: Tally = { claimMs: [], emptyClaims: 0, reports: 0, lastReportAt: new Map(), succeeded: new Set() };
  const t0 = performance.now();
  await Promise.all(clients.map((client, i) => executor(client, `bench-executor-${i}`, ids.length, tally)));
  const seconds = (performance.now() - t0) / 1000;
  const deadline = Date.now() + 60_000;
  while (ids.some((id) => !outcomeSeenAt.has(id)) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const toKafka = ids
    .filter((id) => outcomeSeenAt.has(id))
    .map((id) => (outcomeSeenAt.get(id) as number) - (tally.lastReportAt.get(id) as number))
    .sort((a, b) => a - b);
  const claimMs = [...tally.claimMs].sort((a, b) => a - b);

  console.log(
    `${ids.length} deployments x ${targets} targets (ROLLING, batches of 2, then VERIFY), ${EXECUTORS} executors`,
  );
  console.log(
    `claims:  ${(claimMs.length / seconds).toFixed(0)}/s (${claimMs.length} steps; ${tally.emptyClaims} empty claims)`,
  );
  console.log(`reports: ${(tally.reports / seconds).toFixed(0)}/s (${tally.reports})`);
  console.log(`claim latency: p50 ${ms(percentile(claimMs, 50))}, p99 ${ms(percentile(claimMs, 99))}`);
  console.log(
    `last target report -> DeploymentSucceeded on Kafka (${toKafka.length}/${ids.length}): p50 ${ms(percentile(toKafka, 50))}, p99 ${ms(percentile(toKafka, 99))}`,
  );
  for (const client of [admin, ...clients]) client.close();
  await reader.disconnect();
  await producer.disconnect();
  await service.stop();
}

runBenchmark(main);
