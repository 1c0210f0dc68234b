import type { IHeaders, Message } from "kafkajs";

/**
 * An event as it travels on Kafka: CloudEvents Kafka protocol binding, binary content mode.
 * The value is the protobuf-encoded event message; `type` is its full protobuf message name,
 * so any consumer can decode it from the published .proto files alone.
 */
export interface CloudEvent {
  id: string;
  /** Full protobuf message name, e.g. `rdm.release.v1.ReleaseRegistered`. */
  type: string;
  /** Producing service, e.g. `rdm/release`. */
  source: string;
  /** Aggregate id; also the Kafka message key. */
  subject: string;
  time: Date;
  data: Uint8Array;
  traceparent?: string | undefined;
  /** Further extension attributes, written as `ce_<name>` headers. */
  extensions?: Record<string, string>;
}

export const CONTENT_TYPE_PROTOBUF = "application/protobuf";
const REQUIRED = ["ce_id", "ce_type", "ce_source", "ce_subject", "ce_time"] as const;

export function toKafkaMessage(event: CloudEvent): Message {
  const headers: IHeaders = {
    ce_specversion: "1.0",
    ce_id: event.id,
    ce_type: event.type,
    ce_source: event.source,
    ce_subject: event.subject,
    ce_time: event.time.toISOString(),
    "content-type": CONTENT_TYPE_PROTOBUF,
  };
  if (event.traceparent) headers.traceparent = event.traceparent;
  for (const [name, value] of Object.entries(event.extensions ?? {})) headers[`ce_${name}`] = value;
  return {
    key: event.subject,
    value: Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength),
    headers,
  };
}

export class MalformedCloudEvent extends Error {
  override readonly name = "MalformedCloudEvent";
}

function header(headers: IHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  if (value === undefined || value === null) return undefined;
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}

/**
 * Reads a Kafka message back into a CloudEvent; throws MalformedCloudEvent naming what is missing
 * or wrong. A key, when there is one, must be `ce_subject`: a stream's events keep their order only
 * within the partition their key chooses.
 */
export function fromKafkaMessage(message: {
  headers?: IHeaders;
  key?: Buffer | string | null;
  value: Buffer | null;
}): CloudEvent {
  const missing = REQUIRED.filter((name) => !header(message.headers, name));
  if (missing.length) throw new MalformedCloudEvent(`missing CloudEvents headers: ${missing.join(", ")}`);
  const subject = header(message.headers, "ce_subject") as string;
  if (message.key !== undefined && message.key !== null && message.key.toString() !== subject)
    throw new MalformedCloudEvent(
      `message key ${JSON.stringify(message.key.toString())} is not ce_subject ${JSON.stringify(subject)}`,
    );
  const contentType = header(message.headers, "content-type");
  if (contentType !== CONTENT_TYPE_PROTOBUF)
    throw new MalformedCloudEvent(`unsupported content-type: ${contentType ?? "none"}`);
  const time = new Date(header(message.headers, "ce_time") as string);
  if (Number.isNaN(time.getTime())) throw new MalformedCloudEvent("ce_time is not an RFC 3339 timestamp");
  const extensions: Record<string, string> = {};
  for (const name of Object.keys(message.headers ?? {})) {
    if (name.startsWith("ce_") && !["ce_specversion", ...REQUIRED].includes(name)) {
      extensions[name.slice(3)] = header(message.headers, name) as string;
    }
  }
  return {
    id: header(message.headers, "ce_id") as string,
    type: header(message.headers, "ce_type") as string,
    source: header(message.headers, "ce_source") as string,
    subject,
    time,
    data: new Uint8Array(message.value ?? Buffer.alloc(0)),
    traceparent: header(message.headers, "traceparent"),
    extensions,
  };
}
