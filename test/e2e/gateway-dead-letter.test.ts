// A message the gateway cannot project goes to its dead-letter topic with the reason, and the
// gateway keeps projecting what follows.
import { randomUUID } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { createKafka, createProducer, publishEvents, RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { testConsumerTimings, testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import { Kafka, logLevel } from "kafkajs";
import { e2eStack } from "./harness.js";

// Topics of this test's own; the prefix applies to the dead-letter topic too.
const stack = e2eStack("e2e-dlq");
afterAll(() => stack.stop());

test("an undecodable release event is dead-lettered and projection goes on", async () => {
  const brokers = await testKafkaBrokers();
  const topicPrefix = stack.topicPrefix;
  const dlqTopic = `${topicPrefix}rdm.gateway.dlq.v1`;
  const gateway = await stack.gateway({ env: { LOG_LEVEL: "fatal" } });
  const producer = createProducer(
    createKafka({ brokers, clientId: uniqueId("poison"), logger: createLogger("test", "fatal") }),
  );
  await producer.connect();
  const reader = new Kafka({ brokers, clientId: uniqueId("dlq-reader"), logLevel: logLevel.NOTHING }).consumer({
    groupId: uniqueId("dlq-reader"),
    ...testConsumerTimings,
  });
  try {
    // Same key, so the valid event is behind the poison one in the same partition.
    const releaseId = randomUUID();
    const poisonId = randomUUID();
    const event = { source: "rdm/release", subject: releaseId, time: new Date(), extensions: {} };
    await publishEvents(producer, `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, [
      { ...event, id: poisonId, type: "rdm.release.v1.ReleaseRegistered", data: new Uint8Array([0xff, 0xff, 0xff]) },
      {
        ...event,
        id: randomUUID(),
        type: ReleaseRegisteredSchema.typeName,
        data: toBinary(
          ReleaseRegisteredSchema,
          create(ReleaseRegisteredSchema, {
            releaseId,
            key: "REL-2026-9999",
            title: "After the poison",
            type: ReleaseType.MINOR,
            owner: "olivia",
            phase: ReleasePhase.REGISTRATION,
            metadata: { actor: "olivia", streamVersion: 1n },
          }),
        ),
      },
    ]);

    const dead: Record<string, string>[] = [];
    await reader.connect();
    await reader.subscribe({ topic: dlqTopic, fromBeginning: true });
    await reader.run({
      eachMessage: async ({ message }) => {
        dead.push(Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])));
      },
    });
    const letter = await waitFor(async () => dead.find((h) => h.ce_id === poisonId), {
      timeoutMs: 30_000,
      description: "poison message on the gateway's dead-letter topic",
    });
    expect(letter.rdm_dlq_reason).toBe("permanent");
    expect(letter.rdm_dlq_error).toMatch(/cannot decode rdm\.release\.v1\.ReleaseRegistered/);
    expect(letter.rdm_dlq_original_topic).toBe(`${topicPrefix}${RELEASE_EVENTS_TOPIC}`);

    const health = await fetch(`${gateway.url}/healthz`);
    expect(health.status).toBe(200);
    const token = await stack.token("vera", ["viewer"]);
    const view = await waitFor(
      async () => {
        const response = await fetch(`${gateway.url}/v1/releases/${releaseId}`, {
          headers: { authorization: `Bearer ${token}` },
        });
        return response.status === 200 ? response.json() : undefined;
      },
      { timeoutMs: 30_000, description: "the event after the poison one projected" },
    );
    expect(view).toMatchObject({ releaseId, title: "After the poison", type: "MINOR" });
  } finally {
    await reader.disconnect();
    await producer.disconnect();
  }
});
