import type { Attributes } from "@opentelemetry/api";
import { meter } from "@rdm/observability";

/**
 * Handled and dead-lettered counters and a lag gauge: the partition's high watermark minus the
 * next offset to process, set when a batch arrives and after each message, so a message retried
 * for a long time (the partition waiting on it) shows as lag, not as the lag before it.
 */
export function consumerInstruments(groupId: string) {
  const m = meter("@rdm/messaging");
  const group = { "messaging.consumer.group.name": groupId };
  const handled = m.createCounter("rdm.messaging.consumer.handled", {
    description: "Messages handled, by outcome (handled, duplicate)",
  });
  const deadLettered = m.createCounter("rdm.messaging.consumer.dead_lettered", {
    description: "Messages sent to the dead-letter topic, by reason",
  });
  const lagGauge = m.createObservableGauge("rdm.messaging.consumer.lag", {
    description: "Messages behind the partition's high watermark",
    unit: "{message}",
  });
  const lags = new Map<string, { topic: string; partition: number; lag: number }>();
  const observe = (result: { observe(value: number, attributes: Attributes): void }) => {
    for (const { topic, partition, lag } of lags.values()) {
      result.observe(lag, {
        ...group,
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": String(partition),
      });
    }
  };
  lagGauge.addCallback(observe);
  return {
    handled: { add: (n: number, attributes: Attributes) => handled.add(n, { ...group, ...attributes }) },
    deadLettered: { add: (n: number, attributes: Attributes) => deadLettered.add(n, { ...group, ...attributes }) },
    recordLag(topic: string, partition: number, highWatermark: string, nextOffset: string) {
      lags.set(`${topic}\u0000${partition}`, {
        topic,
        partition,
        lag: Math.max(0, Number(highWatermark) - Number(nextOffset)),
      });
    },
    close: () => lagGauge.removeCallback(observe),
  };
}

export type ConsumerInstruments = ReturnType<typeof consumerInstruments>;
