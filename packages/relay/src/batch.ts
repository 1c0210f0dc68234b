import type { RecordedEvent } from "@rdm/eventstore";
import type { CloudEvent } from "@rdm/messaging";

// What one Kafka request carries: a size-bounded prefix of the events read, each as a CloudEvent.

/** CloudEvents extension names allow only [a-z0-9]. */
const METADATA_EXTENSIONS: Record<string, string> = {
  actor: "actor",
  correlationId: "correlationid",
  causationId: "causationid",
  requestId: "requestid",
};

/** Headers and framing per record, on top of the event's data (CloudEvents headers, key, traceparent). */
const RECORD_OVERHEAD_BYTES = 1024;

/** The longest prefix of `events` within `maxBytes`, and never empty: the order is kept whatever the sizes. */
export function takeBatch(events: RecordedEvent[], maxBytes: number): RecordedEvent[] {
  let bytes = 0;
  let count = 0;
  for (const event of events) {
    bytes += event.data.byteLength + RECORD_OVERHEAD_BYTES;
    if (count > 0 && bytes > maxBytes) break;
    count++;
  }
  return events.slice(0, count);
}

export function toCloudEvent(event: RecordedEvent, source: string): CloudEvent {
  const extensions: Record<string, string> = {
    streamversion: String(event.version),
    streamtype: event.streamType,
    globalposition: String(event.globalPosition),
  };
  for (const [key, name] of Object.entries(METADATA_EXTENSIONS)) {
    const value = event.metadata[key];
    if (typeof value === "string" && value) extensions[name] = value;
  }
  return {
    id: event.eventId,
    type: event.type,
    source,
    subject: event.streamId,
    time: event.recordedAt,
    data: event.data,
    traceparent: typeof event.metadata.traceparent === "string" ? event.metadata.traceparent : undefined,
    extensions,
  };
}
