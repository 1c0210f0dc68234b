import { randomBytes } from "node:crypto";
import {
  currentTraceparent,
  SpanKind,
  startTelemetry,
  type Telemetry,
  type TelemetryOptions,
} from "@rdm/observability";
import { uniqueId, waitFor } from "@rdm/testkit";
import { publishEvents } from "../src/index.js";
import { cloudEvent, fixture, recordEffect, WAIT } from "./fixture.js";

type SpanProcessor = NonNullable<TelemetryOptions["spanProcessors"]>[number];
type EndedSpan = Parameters<SpanProcessor["onEnd"]>[0];

const ended: EndedSpan[] = [];
const collect: SpanProcessor = {
  onStart: () => undefined,
  onEnd: (span) => {
    ended.push(span);
  },
  forceFlush: async () => undefined,
  shutdown: async () => undefined,
};

let telemetry: Telemetry;
beforeAll(async () => {
  telemetry = await startTelemetry({ serviceName: "messaging-test", spanProcessors: [collect] });
});
afterAll(() => telemetry.shutdown());

describe("startConsumer: tracing", () => {
  it("handles each message in a CONSUMER span whose parent is the message's traceparent", async () => {
    const f = await fixture();
    const seenInHandler: (string | undefined)[] = [];
    await f.start(async (event, tx) => {
      seenInHandler.push(currentTraceparent());
      await recordEffect(event, tx);
    });
    const traceId = randomBytes(16).toString("hex");
    const parentSpanId = randomBytes(8).toString("hex");
    const event = { ...cloudEvent("test.Valid", uniqueId("agg")), traceparent: `00-${traceId}-${parentSpanId}-01` };
    await publishEvents(f.producer, f.topic, [event]);

    const span = await waitFor(() => ended.find((s) => s.attributes["messaging.message.id"] === event.id), {
      ...WAIT,
      description: "the consumer span of the event",
    });
    expect(span.name).toBe(`process ${f.topic}`);
    expect(span.kind).toBe(SpanKind.CONSUMER);
    expect(span.spanContext().traceId).toBe(traceId);
    expect(span.parentSpanContext?.spanId).toBe(parentSpanId);
    expect(span.attributes["messaging.consumer.group.name"]).toBe(f.groupId);
    // The handler runs inside that span, so whatever it publishes or logs joins the trace.
    expect(seenInHandler).toEqual([`00-${traceId}-${span.spanContext().spanId}-01`]);
  });
});
