// One trace follows a command from the gRPC client through the release service, its event
// store and the relay, over Kafka, into the gateway's projection consumer.
import { randomUUID } from "node:crypto";
import { mintDevToken } from "@rdm/auth";
import { startGateway } from "@rdm/gateway";
import { createGrpcClient } from "@rdm/grpc";
import { inSpan, SpanKind, startTelemetry, type Telemetry, type TelemetryOptions } from "@rdm/observability";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { startReleaseService } from "@rdm/release";
import {
  createTestDatabase,
  testConsumerTimings,
  testKafkaBrokers,
  testTopicPrefix,
  uniqueId,
  waitFor,
} from "@rdm/testkit";

type SpanProcessor = NonNullable<TelemetryOptions["spanProcessors"]>[number];
type EndedSpan = Parameters<SpanProcessor["onEnd"]>[0];

const ended: EndedSpan[] = [];
const collect: SpanProcessor = {
  onStart: () => undefined,
  onEnd: (span) => void ended.push(span),
  forceFlush: async () => undefined,
  shutdown: async () => undefined,
};

let telemetry: Telemetry;
const stops: (() => Promise<void>)[] = [];
// Topics of this file's own: its gateway projects only the release registered here.
const topicPrefix = testTopicPrefix("e2e-tracing");
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  await telemetry?.shutdown();
});

test("a RegisterRelease trace reaches the gateway's projection consumer", async () => {
  telemetry = await startTelemetry({ serviceName: "e2e-tracing", spanProcessors: [collect] });
  const brokers = (await testKafkaBrokers()).join(",");
  const secret = randomUUID() + randomUUID();
  const release = await startReleaseService({
    DATABASE_URL: (await createTestDatabase("trace_release")).url,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: topicPrefix,
    AUTH_JWT_SECRET: secret,
    GRPC_PORT: "0",
    LOG_LEVEL: "warn",
    RELEASE_CONSUMER_GROUP: uniqueId("trace-release"),
    RELEASE_CONSUMER_SESSION_TIMEOUT_MS: String(testConsumerTimings.sessionTimeout),
  });
  stops.push(() => release.stop());
  const gateway = await startGateway({
    DATABASE_URL: (await createTestDatabase("trace_gateway")).url,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: topicPrefix,
    AUTH_JWT_SECRET: secret,
    HTTP_PORT: "0",
    GATEWAY_CONSUMER_GROUP: uniqueId("trace"),
    LOG_LEVEL: "warn",
  });
  stops.push(() => gateway.stop());

  const token = await mintDevToken({
    subject: "tess",
    roles: ["release-manager"],
    secret,
    issuer: "rdm",
    audience: "rdm",
  });
  const client = createGrpcClient(ReleaseService, `127.0.0.1:${release.port}`, { token });
  const { traceId, releaseId } = await inSpan("test.register", { kind: SpanKind.CLIENT }, async (span) => {
    const { release: registered } = await client.registerRelease({
      requestId: randomUUID(),
      title: "Traced release",
      type: ReleaseType.MINOR,
      owner: "tess",
    });
    return { traceId: span.spanContext().traceId, releaseId: registered?.releaseId };
  });
  expect(releaseId).toBeDefined();

  const inTrace = () => ended.filter((s) => s.spanContext().traceId === traceId);
  const consumerSpan = await waitFor(
    async () =>
      inTrace().find((s) => s.kind === SpanKind.CONSUMER && s.name.includes(`${topicPrefix}rdm.release.events.v1`)),
    {
      timeoutMs: 20_000,
      description: "the gateway's consumer span in the command's trace",
    },
  );
  const kinds = new Set(inTrace().map((s) => s.kind));
  expect(kinds).toContain(SpanKind.SERVER);
  expect(inTrace().some((s) => s.name.startsWith("eventstore."))).toBe(true);
  expect(consumerSpan.parentSpanContext?.traceId ?? traceId).toBe(traceId);
});
