// patches/kafkajs@2.2.4.patch makes kafkajs's producer cheaper: a record is encoded into one
// buffer of its exact size, varints written in place (an encoder per header and a Buffer per
// varint made record encoding most of the relay's CPU; varlongs within 32 bits skip the Long
// arithmetic), a batch is grouped by partition without copying each partition's array per
// message, and keys are hashed (murmur2) in 32-bit arithmetic. These pin the bytes to those the
// unpatched library wrote, read them back with kafkajs's own decoder, check the grouping keeps
// order, and the hashes against the Java client's.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
interface Encoder {
  buffer: Buffer;
}
const EncoderClass = require("kafkajs/src/protocol/encoder.js") as new () => Encoder & {
  writeVarLong(value: number): Encoder;
};
const murmur2 = require("kafkajs/src/producer/partitioners/default/murmur2.js") as (key: string | Buffer) => number;
const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as (record: object) => Encoder;
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js") as {
  RecordBatch: (batch: object) => Promise<Encoder>;
};
const decodeBatch = require("kafkajs/src/protocol/recordBatch/v0/decoder.js") as (decoder: unknown) => Promise<{
  records: { key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer | Buffer[]>; offset: string }[];
}>;
const Decoder = require("kafkajs/src/protocol/decoder.js") as new (buffer: Buffer) => unknown;
const groupMessagesPerPartition = require("kafkajs/src/producer/groupMessagesPerPartition.js") as (options: {
  topic: string;
  partitionMetadata: unknown[];
  messages: { key: string }[];
  partitioner: (options: { message: { key: string } }) => number;
}) => Record<string, { key: string }[]>;

test("a record's bytes are those kafkajs 2.2.4 wrote unpatched", () => {
  const record = Record({
    offsetDelta: 200,
    timestampDelta: 70_000,
    key: "CI-Ü1",
    value: Buffer.alloc(150, 0xab),
    headers: { ce_id: "e-1", traceparent: "00-ab", multi: ["α", "β"] },
  });
  // Written by the unpatched library (multi-byte varints, a non-ASCII key, a repeated header).
  const expected = `a80300e0c50890030c43492dc39c31ac02${"ab".repeat(150)}080a63655f696406652d31167472616365706172656e740a30302d61620a6d756c746904ceb10a6d756c746904ceb2`;
  expect(record.buffer.toString("hex")).toBe(expected);
});

test("a batch of records reads back as written", async () => {
  const messages = Array.from({ length: 300 }, (_, i) => ({
    key: i % 7 === 0 ? null : `CI-${i}-é`,
    value: i % 11 === 0 ? null : Buffer.alloc(i * 3, i % 256),
    headers: { ce_id: `id-${i}`, ce_type: "rdm.configuration.v1.RelationshipAdded", many: ["a", "ü".repeat(i)] },
  }));
  const records = messages.map((message, i) => Record({ ...message, offsetDelta: i, timestampDelta: i * 1_000 }));
  const batch = await RecordBatch({ records, firstTimestamp: Date.now(), maxTimestamp: Date.now() + 300_000 });
  const decoded = await decodeBatch(new Decoder(batch.buffer));
  expect(decoded.records).toHaveLength(messages.length);
  decoded.records.forEach((record, i) => {
    const message = messages[i] as (typeof messages)[number];
    expect(record.offset).toBe(String(i));
    expect(record.key?.toString() ?? null).toBe(message.key);
    expect(record.value === null ? null : Buffer.compare(record.value, message.value as Buffer)).toBe(
      message.value === null ? null : 0,
    );
    expect(record.headers.ce_id?.toString()).toBe(`id-${i}`);
    expect((record.headers.many as Buffer[]).map(String)).toEqual(["a", "ü".repeat(i)]);
  });
});

test("a batch is grouped by partition, each partition's messages in the order sent", () => {
  const messages = Array.from({ length: 1_000 }, (_, i) => ({ key: `k${i}` }));
  const grouped = groupMessagesPerPartition({
    topic: "t",
    partitionMetadata: [{}, {}, {}],
    messages,
    partitioner: ({ message }) => Number(message.key.slice(1)) % 3,
  });
  expect(Object.keys(grouped)).toEqual(["0", "1", "2"]);
  for (const partition of [0, 1, 2]) {
    expect(grouped[partition]).toEqual(messages.filter((_, i) => i % 3 === partition));
  }
  expect(groupMessagesPerPartition({ topic: "t", partitionMetadata: [], messages, partitioner: () => 0 })).toEqual({});
});

test("varlongs are written as the unpatched library wrote them, within 32 bits and past them", () => {
  const written: [number, string][] = [
    [0, "00"],
    [-1, "01"],
    [70_000, "e0c508"],
    [-70_000, "dfc508"],
    [2 ** 31 - 1, "feffffff0f"],
    [-(2 ** 31), "ffffffff0f"],
    [2 ** 31, "8080808010"],
    [-(2 ** 31) - 1, "8180808010"],
    [1_234_567_890_123, "9693d89fee47"],
  ];
  for (const [value, hex] of written) expect(new EncoderClass().writeVarLong(value).buffer.toString("hex")).toBe(hex);
});

test("keys hash as the Java client hashes them, so a key's partition is the same from any client", () => {
  // Apache Kafka's UtilsTest.testMurmur2 vectors, then keys of every length modulo 4.
  const hashes: [string | Buffer, number][] = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
    [Buffer.from("abc"), 479470107],
    ["", 275646681],
    ["ü", 1419834458],
    ["ci-0194c1c2-7d3e-7aaa-8bbb-123456789abc", -937064910],
    ["\u{1F600}x", -1018136956],
  ];
  for (const [key, hash] of hashes) expect(murmur2(key)).toBe(hash);
});
