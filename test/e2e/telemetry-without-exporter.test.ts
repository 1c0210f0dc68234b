// Telemetry as a process runs it with no exporter configured: a command's event still carries its
// server span's trace to Kafka and into a consumer's work, and /metrics (Prometheus text format)
// reports call latency, relay lag, consumer lag per group and partition, dead letters and pool use.
import { randomUUID } from "node:crypto";
import { createKafka, createProducer, publishEvents, RELEASE_EVENTS_TOPIC, startConsumer } from "@rdm/messaging";
import { createLogger, currentTraceparent, startTelemetry, type Telemetry } from "@rdm/observability";
import { testConsumerTimings, testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import { Kafka, logLevel } from "kafkajs";
import { e2eStack, registerWithoutTrace } from "./harness.js";

let telemetry: Telemetry;
const stack = e2eStack("e2e-telemetry");
const topicPrefix = stack.topicPrefix;
const releaseTopic = `${topicPrefix}${RELEASE_EVENTS_TOPIC}`;
afterAll(async () => {
  await stack.stop();
  await telemetry?.shutdown();
});

/** The value of the first sample of `name` whose labels include every one given. */
function sample(metrics: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of metrics.split("\n")) {
    const match = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const found = Object.fromEntries([...(match[2] as string).matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([key, value]) => found[key] === value)) return Number(match[3]);
  }
  return undefined;
}

test("without an exporter, events carry the server span's trace to consumers, and /metrics reports the system", async () => {
  telemetry = await startTelemetry({ serviceName: "e2e-telemetry", metrics: { host: "127.0.0.1", port: 0 } });
  const brokers = await testKafkaBrokers();
  const release = await stack.release();
  const gatewayGroup = uniqueId("telemetry-gateway");
  await stack.gateway({ group: gatewayGroup, env: { LOG_LEVEL: "fatal" } });

  // A consumer of the test's own, run by @rdm/messaging's runner: what its handler sees as the
  // active trace is the trace its work continues.
  const kafka = createKafka({ brokers, clientId: uniqueId("telemetry"), logger: createLogger("test", "fatal") });
  const seen = new Map<string, string | undefined>();
  const consumer = await startConsumer({
    kafka,
    pool: release.context.pool,
    groupId: uniqueId("telemetry-reader"),
    topics: [releaseTopic],
    handle: async (event) => void seen.set(event.id, currentTraceparent()),
    deadLetterTopic: `${topicPrefix}telemetry.dlq.v1`,
    fromBeginning: true,
    sessionTimeoutMs: testConsumerTimings.sessionTimeout,
    logger: createLogger("test", "fatal"),
  });
  stack.onStop(() => consumer.stop());

  const token = await stack.token("tess", ["release-manager"]);
  const releaseId = await registerWithoutTrace(release.address, token, "Traced without an exporter");

  const [event] = await release.context.store.readStream(releaseId);
  const traceparent = event?.metadata.traceparent as string;
  expect(traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  const traceId = traceparent.split("-")[1];
  expect(traceId).not.toBe("0".repeat(32));

  const reader = new Kafka({ brokers, logLevel: logLevel.NOTHING }).consumer({ groupId: uniqueId("header-reader") });
  stack.onStop(() => reader.disconnect());
  const headers = new Map<string, string | undefined>();
  await reader.connect();
  await reader.subscribe({ topic: releaseTopic, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message }) =>
      void headers.set(String(message.headers?.ce_id), message.headers?.traceparent?.toString()),
  });
  await waitFor(async () => headers.has(event?.eventId as string), {
    timeoutMs: 20_000,
    description: "the event on Kafka",
  });
  expect(headers.get(event?.eventId as string)).toBe(traceparent);

  const inConsumer = await waitFor(async () => seen.get(event?.eventId as string), {
    timeoutMs: 30_000,
    description: "the consumer's handling of the event",
  });
  expect(inConsumer.split("-")[1]).toBe(traceId);
  expect(inConsumer).not.toBe(traceparent); // a span of its own, child of the event's

  // A message the gateway cannot project: a dead letter.
  const producer = createProducer(kafka);
  await producer.connect();
  stack.onStop(() => producer.disconnect());
  await publishEvents(producer, releaseTopic, [
    {
      id: randomUUID(),
      type: "rdm.release.v1.ReleaseRegistered",
      source: "rdm/release",
      subject: randomUUID(),
      time: new Date(),
      data: new Uint8Array([0xff, 0xff, 0xff]),
      extensions: {},
    },
  ]);

  const scrape = async () => {
    const response = await fetch(`http://127.0.0.1:${telemetry.metricsPort}/metrics`);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain/);
    return response.text();
  };
  const metrics = await waitFor(
    async () => {
      const text = await scrape();
      const deadLettered = sample(text, "rdm_messaging_consumer_dead_lettered_total", {
        messaging_consumer_group_name: gatewayGroup,
      });
      return deadLettered === 1 ? text : undefined;
    },
    { timeoutMs: 30_000, description: "the gateway's dead letter in /metrics" },
  );
  const rpc = { rpc_method: "RegisterRelease", rpc_grpc_status_code: "0" };
  expect(sample(metrics, "rpc_server_duration_count", rpc)).toBe(1);
  expect(sample(metrics, "rpc_server_duration_bucket", { ...rpc, le: "+Inf" })).toBe(1);
  expect(sample(metrics, "rdm_relay_published_events_total", { topic: releaseTopic })).toBeGreaterThanOrEqual(1);
  expect(sample(metrics, "rdm_relay_lag_events", { topic: releaseTopic })).toBe(0);
  expect(sample(metrics, "rdm_relay_lag_seconds", { topic: releaseTopic })).toBe(0);
  const lag = sample(metrics, "rdm_messaging_consumer_lag", {
    messaging_consumer_group_name: gatewayGroup,
    messaging_destination_name: releaseTopic,
  });
  expect(lag).toBeGreaterThanOrEqual(0);
  expect(metrics).toMatch(/^rdm_messaging_consumer_lag\{[^}]*messaging_destination_partition_id="\d+"/m);
  expect(
    sample(metrics, "rdm_messaging_consumer_handled_total", { messaging_consumer_group_name: gatewayGroup }),
  ).toBeGreaterThanOrEqual(1);
  for (const pool of ["release", "gateway"]) {
    expect(sample(metrics, "db_client_connection_max", { db_client_connection_pool_name: pool })).toBe(20);
    const idle = sample(metrics, "db_client_connection_count", {
      db_client_connection_pool_name: pool,
      db_client_connection_state: "idle",
    });
    expect(idle).toBeGreaterThanOrEqual(1);
  }
});
