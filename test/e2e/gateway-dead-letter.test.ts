// A message the gateway cannot project goes to its dead-letter topic with the reason, and the
// gateway keeps projecting what follows. So does a body that is not the event its envelope names.
import { randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  CONFIGURATION_EVENTS_TOPIC,
  createKafka,
  createProducer,
  publishEvents,
  RELEASE_EVENTS_TOPIC,
} from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { ArtifactRegisteredSchema } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { testConsumerTimings, testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import { Kafka, logLevel } from "kafkajs";
import { e2eStack } from "./harness.js";

// Topics of this test's own; the prefix applies to the dead-letter topic too.
const stack = e2eStack("e2e-dlq");
afterAll(() => stack.stop());

test("an undecodable event, one whose body is not the event its envelope names, or one breaking the input rules is dead-lettered and projection goes on", async () => {
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
    const validId = randomUUID();
    const event = { source: "rdm/release", subject: releaseId, time: new Date(), extensions: {} };
    const registered = toBinary(
      ReleaseRegisteredSchema,
      create(ReleaseRegisteredSchema, {
        releaseId,
        key: "REL-2026-9999",
        title: "After the poison",
        type: ReleaseType.MINOR,
        owner: "olivia",
        phase: ReleasePhase.REGISTRATION,
        metadata: { eventId: validId, actor: "olivia", streamId: releaseId, streamVersion: 1n },
      }),
    );
    await publishEvents(producer, `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, [
      { ...event, id: poisonId, type: "rdm.release.v1.ReleaseRegistered", data: new Uint8Array([0xff, 0xff, 0xff]) },
      { ...event, id: validId, type: ReleaseRegisteredSchema.typeName, data: registered },
    ]);
    // The same registration replayed under another subject (and key): it would show a second
    // release with the first one's fields. And an empty body under valid headers: it decodes, as
    // every field at its default, to an artifact with an empty id.
    const phantomId = randomUUID();
    const replayId = randomUUID();
    const emptyId = randomUUID();
    await publishEvents(producer, `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, [
      { ...event, subject: phantomId, id: replayId, type: ReleaseRegisteredSchema.typeName, data: registered },
    ]);
    // The registration with its metadata rewritten for another stream, its body left as it was:
    // it would change the first release's row.
    const copyId = randomUUID();
    const copySubject = randomUUID();
    await publishEvents(producer, `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, [
      {
        ...event,
        subject: copySubject,
        id: copyId,
        type: ReleaseRegisteredSchema.typeName,
        data: toBinary(ReleaseRegisteredSchema, {
          ...fromBinary(ReleaseRegisteredSchema, registered),
          title: "Copied over",
          metadata: create(EventMetadataSchema, {
            eventId: copyId,
            actor: "mallory",
            streamId: copySubject,
            streamVersion: 2n,
          }),
        }),
      },
    ]);
    await publishEvents(producer, `${topicPrefix}${CONFIGURATION_EVENTS_TOPIC}`, [
      {
        source: "rdm/configuration",
        subject: randomUUID(),
        time: new Date(),
        id: emptyId,
        type: ArtifactRegisteredSchema.typeName,
        data: new Uint8Array(),
        extensions: { streamversion: "1" },
      },
    ]);
    // A registration that happened in the year 10000: no service publishes one (the input rules).
    const farId = randomUUID();
    const farRelease = randomUUID();
    await publishEvents(producer, `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, [
      {
        ...event,
        subject: farRelease,
        id: farId,
        type: ReleaseRegisteredSchema.typeName,
        data: toBinary(
          ReleaseRegisteredSchema,
          create(ReleaseRegisteredSchema, {
            releaseId: farRelease,
            title: "Far ahead",
            metadata: {
              eventId: farId,
              streamId: farRelease,
              streamVersion: 1n,
              occurredAt: { seconds: 253_402_300_800n },
            },
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
    const letterOf = (id: string, what: string) =>
      waitFor(async () => dead.find((h) => h.ce_id === id), {
        timeoutMs: 30_000,
        description: `${what} on the gateway's dead-letter topic`,
      });
    const letter = await letterOf(poisonId, "poison message");
    expect(letter.rdm_dlq_reason).toBe("permanent");
    expect(letter.rdm_dlq_error).toMatch(/cannot decode rdm\.release\.v1\.ReleaseRegistered/);
    expect(letter.rdm_dlq_original_topic).toBe(`${topicPrefix}${RELEASE_EVENTS_TOPIC}`);
    expect(await letterOf(replayId, "the replay under another subject")).toMatchObject({
      rdm_dlq_reason: "permanent",
      rdm_dlq_error: expect.stringContaining(
        `metadata.event_id "${validId}" is not ce_id "${replayId}"; metadata.stream_id "${releaseId}" is not ce_subject "${phantomId}"`,
      ),
    });
    expect(await letterOf(copyId, "the body copied under another stream")).toMatchObject({
      rdm_dlq_reason: "permanent",
      rdm_dlq_error: expect.stringContaining(
        `rdm.release.v1.ReleaseRegistered is about stream "${releaseId}", not its metadata.stream_id "${copySubject}"`,
      ),
    });
    expect(await letterOf(emptyId, "the empty artifact registration")).toMatchObject({
      rdm_dlq_reason: "permanent",
      rdm_dlq_error: expect.stringContaining("ArtifactRegistered does not match its envelope: it has no metadata"),
    });
    // At once (permanent), not after the retries of a row the database refused.
    expect(await letterOf(farId, "the registration in the year 10000")).toMatchObject({
      rdm_dlq_reason: "permanent",
      rdm_dlq_error: expect.stringContaining("breaks the input rules: metadata.occurred_at: must be between"),
    });

    const health = await fetch(`${gateway.url}/healthz`);
    expect(health.status).toBe(200);
    const token = await stack.token("vera", ["viewer"]);
    const get = (path: string) => fetch(`${gateway.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    const view = await waitFor(
      async () => {
        const response = await get(`/v1/releases/${releaseId}`);
        return response.status === 200 ? response.json() : undefined;
      },
      { timeoutMs: 30_000, description: "the event after the poison one projected" },
    );
    expect(view).toMatchObject({ releaseId, title: "After the poison", type: "MINOR" });
    expect((await get(`/v1/releases/${phantomId}`)).status).toBe(404);
    expect((await get(`/v1/releases/${copySubject}`)).status).toBe(404);
  } finally {
    await reader.disconnect();
    await producer.disconnect();
  }
});
