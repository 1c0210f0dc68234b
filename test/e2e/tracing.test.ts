// One trace follows a command from the gRPC server through the release service's event store and
// relay, over Kafka (the W3C traceparent header), into the gateway's projection consumer and the
// change service's consumer of release events. The caller sends no trace of its own: the server
// span starts it. Spans are collected in memory.

import { RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { SpanKind, startTelemetry, type Telemetry, type TelemetryOptions } from "@rdm/observability";
import { testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import { Kafka, logLevel } from "kafkajs";
import { e2eStack, registerWithoutTrace } from "./harness.js";

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
// Topics of this file's own: its consumers see only the release registered here.
const stack = e2eStack("e2e-tracing");
const topicPrefix = stack.topicPrefix;
afterAll(async () => {
  await stack.stop();
  await telemetry?.shutdown();
});

/** The traceparent header of the first message on a topic, read by a consumer of the test's own. */
async function firstTraceparentHeader(brokers: string[], topic: string): Promise<string | undefined> {
  const consumer = new Kafka({ brokers, logLevel: logLevel.NOTHING }).consumer({
    groupId: uniqueId("trace-reader"),
    maxWaitTimeInMs: 100,
  });
  stack.onStop(() => consumer.disconnect());
  const headers: (string | undefined)[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => void headers.push(message.headers?.traceparent?.toString()),
  });
  await waitFor(async () => headers.length > 0, { timeoutMs: 20_000, description: `a message on ${topic}` });
  return headers[0];
}

test("a command's server span starts the trace its event carries to Kafka and to every consumer", async () => {
  telemetry = await startTelemetry({ serviceName: "e2e-tracing", spanProcessors: [collect] });
  const brokers = await testKafkaBrokers();
  const release = await stack.release();
  const changeGroup = uniqueId("trace-change");
  const gatewayGroup = uniqueId("trace-gateway");
  await stack.change({ group: changeGroup });
  await stack.gateway({ group: gatewayGroup });

  const token = await stack.token("tess", ["release-manager"]);
  const releaseId = await registerWithoutTrace(release.address, token, "Traced release");

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
