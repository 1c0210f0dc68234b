import type { IHeaders } from "kafkajs";
import {
  type CloudEvent,
  CONTENT_TYPE_PROTOBUF,
  fromKafkaMessage,
  MalformedCloudEvent,
  toKafkaMessage,
} from "../src/index.js";

const event: CloudEvent = {
  id: "0b7e6c2a-6f1e-4d5e-9a0b-2b1f3c4d5e6f",
  type: "rdm.release.v1.ReleaseRegistered",
  source: "rdm/release",
  subject: "rel-42",
  time: new Date("2026-11-22T10:11:12.345Z"),
  data: new Uint8Array([8, 1, 18, 3, 97, 98, 99]),
  traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
  extensions: { actor: "alice" },
};

/** What a consumer sees: kafkajs hands header values over as Buffers. */
function asReceived(message: ReturnType<typeof toKafkaMessage>): {
  headers: IHeaders;
  key: Buffer | null;
  value: Buffer | null;
} {
  const headers: IHeaders = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = Buffer.from(String(value));
  return {
    headers,
    key: message.key === null || message.key === undefined ? null : Buffer.from(message.key),
    value: message.value === null || message.value === undefined ? null : Buffer.from(message.value),
  };
}

describe("CloudEvents Kafka binding (binary mode)", () => {
  it("writes the ce_ headers, content-type and traceparent, keyed by subject", () => {
    const message = toKafkaMessage(event);
    expect(message.key).toBe("rel-42");
    expect(message.headers).toEqual({
      ce_specversion: "1.0",
      ce_id: event.id,
      ce_type: "rdm.release.v1.ReleaseRegistered",
      ce_source: "rdm/release",
      ce_subject: "rel-42",
      ce_time: "2026-11-22T10:11:12.345Z",
      ce_actor: "alice",
      "content-type": CONTENT_TYPE_PROTOBUF,
      traceparent: event.traceparent,
    });
    expect([...(message.value as Buffer)]).toEqual([...event.data]);
  });

  it("round-trips an event through a Kafka message", () => {
    const back = fromKafkaMessage(asReceived(toKafkaMessage(event)));
    expect(back).toEqual(event);
  });

  it("round-trips an event without traceparent, extensions or data", () => {
    const bare: CloudEvent = { ...event, data: new Uint8Array(), traceparent: undefined, extensions: {} };
    const back = fromKafkaMessage(asReceived(toKafkaMessage(bare)));
    expect(back).toEqual(bare);
  });

  it("keeps the bytes of a data view into a larger buffer", () => {
    const backing = new Uint8Array([9, 9, 1, 2, 3, 9]);
    const back = fromKafkaMessage(asReceived(toKafkaMessage({ ...event, data: backing.subarray(2, 5) })));
    expect([...back.data]).toEqual([1, 2, 3]);
  });

  it("rejects a message without CloudEvents headers, naming each missing one", () => {
    expect(() => fromKafkaMessage({ headers: {}, value: Buffer.from("x") })).toThrow(MalformedCloudEvent);
    expect(() => fromKafkaMessage({ value: Buffer.from("x") })).toThrow(
      "missing CloudEvents headers: ce_id, ce_type, ce_source, ce_subject, ce_time",
    );
    const { headers } = asReceived(toKafkaMessage(event));
    delete headers.ce_type;
    expect(() => fromKafkaMessage({ headers, value: null })).toThrow("missing CloudEvents headers: ce_type");
  });

  it("rejects a key that is not ce_subject (the stream's partition); takes a message without a key", () => {
    const received = asReceived(toKafkaMessage(event));
    expect(() => fromKafkaMessage({ ...received, key: Buffer.from("rel-43") })).toThrow(
      new MalformedCloudEvent('message key "rel-43" is not ce_subject "rel-42"'),
    );
    expect(fromKafkaMessage({ ...received, key: null })).toEqual(event);
  });

  it("rejects another content type and an unreadable time", () => {
    const { headers, value } = asReceived(toKafkaMessage(event));
    expect(() => fromKafkaMessage({ headers: { ...headers, "content-type": "application/json" }, value })).toThrow(
      "unsupported content-type: application/json",
    );
    expect(() => fromKafkaMessage({ headers: { ...headers, ce_time: "yesterday" }, value })).toThrow(
      MalformedCloudEvent,
    );
  });
});
