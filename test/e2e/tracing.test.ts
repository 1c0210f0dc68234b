// One trace follows a command from the gRPC server through the release service's event store and
// relay, over Kafka (the W3C traceparent header), into the gateway's projection consumer and the
// change service's consumer of release events. The caller sends no trace of its own: the server
// span starts it. Spans are collected in memory.

import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { mintDevToken } from "@rdm/auth";
import { startChangeService } from "@rdm/change";
import { startGateway } from "@rdm/gateway";
import { RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { SpanKind, startTelemetry, type Telemetry, type TelemetryOptions } from "@rdm/observability";
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
import { Kafka, logLevel } from "kafkajs";

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
// Topics of this file's own: its consumers see only the release registered here.
const topicPrefix = testTopicPrefix("e2e-tracing");
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
  await telemetry?.shutdown();
});

/** The traceparent header of the first message on a topic, read by a consumer of the test's own. */
async function firstTraceparentHeader(brokers: string[], topic: string): Promise<string | undefined> {
  const consumer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).consumer({
    groupId: uniqueId("trace-reader"),
    maxWaitTimeInMs: 100,
  });
  stops.push(() => consumer.disconnect());
  const headers: (string | undefined)[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => void headers.push(message.headers?.traceparent?.toString()),
  });
  await waitFor(async () => headers.length > 0, { timeoutMs: 20_000, description: `a message on ${topic}` });
  return headers[0];
}

/** RegisterRelease with a bare grpc-js client, which (unlike @rdm/grpc's client) sends no traceparent. */
function registerWithoutTrace(address: string, token: string, title: string): Promise<string> {
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

test("a command's server span starts the trace its event carries to Kafka and to every consumer", async () => {
  telemetry = await startTelemetry({ serviceName: "e2e-tracing", spanProcessors: [collect] });
  const brokers = await testKafkaBrokers();
  const secret = randomUUID() + randomUUID();
  const common = { KAFKA_BROKERS: brokers.join(","), KAFKA_TOPIC_PREFIX: topicPrefix, AUTH_JWT_SECRET: secret };
  const release = await startReleaseService({
    ...common,
    DATABASE_URL: (await createTestDatabase("trace_release")).url,
    GRPC_PORT: "0",
    LOG_LEVEL: "warn",
    RELEASE_CONSUMER_GROUP: uniqueId("trace-release"),
    RELEASE_CONSUMER_SESSION_TIMEOUT_MS: String(testConsumerTimings.sessionTimeout),
  });
  stops.push(() => release.stop());
  const changeGroup = uniqueId("trace-change");
  const gatewayGroup = uniqueId("trace-gateway");
  const change = await startChangeService({
    ...common,
    DATABASE_URL: (await createTestDatabase("trace_change")).url,
    GRPC_PORT: "0",
    LOG_LEVEL: "warn",
    CHANGE_CONSUMER_GROUP: changeGroup,
    CHANGE_CONSUMER_SESSION_TIMEOUT_MS: String(testConsumerTimings.sessionTimeout),
  });
  stops.push(() => change.stop());
  const gateway = await startGateway({
    ...common,
    DATABASE_URL: (await createTestDatabase("trace_gateway")).url,
    HTTP_PORT: "0",
    GATEWAY_CONSUMER_GROUP: gatewayGroup,
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
  const releaseId = await registerWithoutTrace(`127.0.0.1:${release.port}`, token, "Traced release");

  const serverSpan = await waitFor(
    async () =>
      ended.find(
        (s) =>
          s.kind === SpanKind.SERVER &&
          s.name === "rdm.release.v1.ReleaseService/RegisterRelease" &&
          !s.parentSpanContext,
      ),
    { timeoutMs: 5_000, description: "the RegisterRelease server span" },
  );
  const traceId = serverSpan.spanContext().traceId;

  const [event] = await release.context.store.readStream(releaseId);
  const traceparent = event?.metadata.traceparent;
  expect(traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`));

  const topic = `${topicPrefix}${RELEASE_EVENTS_TOPIC}`;
  expect(await firstTraceparentHeader(brokers, topic)).toBe(traceparent);

  const parentSpanId = traceparent?.split("-")[2];
  // The gateway's projections and the change service's reactions to release events.
  for (const group of [gatewayGroup, `${changeGroup}.releases`]) {
    const consumerSpan = await waitFor(
      async () =>
        ended.find(
          (s) =>
            s.kind === SpanKind.CONSUMER &&
            s.name === `process ${topic}` &&
            s.attributes["messaging.consumer.group.name"] === group &&
            s.attributes["messaging.message.id"] === event?.eventId,
        ),
      { timeoutMs: 30_000, description: `the consumer span of group ${group} for the event` },
    );
    expect(consumerSpan.spanContext().traceId).toBe(traceId);
    expect(consumerSpan.parentSpanContext?.spanId).toBe(parentSpanId);
  }
});
