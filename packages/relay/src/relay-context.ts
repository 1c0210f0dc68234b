import type { EventStore } from "@rdm/eventstore";
import { type Logger, meter } from "@rdm/observability";
import type { Kafka } from "kafkajs";
import type { Pool } from "pg";

// What the relay's loops (election in election.ts, publishing in leader.ts) share: settings
// with their defaults applied, the wake-up signal, the metrics and the observable status.

export interface RelaySettings {
  name: string;
  topic: string;
  source: string;
  batchSize: number;
  maxBatchBytes: number;
  pollIntervalMs: number;
  lingerMs: number;
  clusterCheckIntervalMs: number;
  maxBackoffMs: number;
}

/** Mutable state read by stop() and by the Relay's getters. */
export interface RelayStatus {
  stopping: boolean;
  leader: boolean;
  cycles: number;
  batches: number;
  lastError: Error | undefined;
  /** Disconnects Kafka under a batch in flight; set while leading. */
  abortKafka: (() => Promise<void>) | undefined;
  /** Next re-read delay while committed events wait behind an open transaction. */
  heldBackWaitMs: number;
}

export interface RelayContext extends RelaySettings {
  pool: Pool;
  kafka: Kafka;
  store: EventStore;
  log: Logger;
  wakeup: Wakeup;
  metrics: RelayMetrics;
  status: RelayStatus;
}

export type Wakeup = ReturnType<typeof createWakeup>;

/**
 * The relay's sleep: a NOTIFY (wake) or stop (interrupt) ends it early. A NOTIFY that arrived
 * since the current cycle began (beginCycle) ends the next pause at once, so no wake-up is lost
 * between the read and the pause.
 */
export function createWakeup(isStopping: () => boolean) {
  let woken = false;
  let wakeUp: (() => void) | undefined;
  let interruptible = false;
  return {
    wake() {
      woken = true;
      if (interruptible) wakeUp?.();
    },
    beginCycle() {
      woken = false;
    },
    /** Whether a NOTIFY arrived since the current cycle began: more commits are waiting. */
    get pending() {
      return woken;
    },
    interrupt() {
      wakeUp?.();
    },
    /** Sleeps up to ms; stop() always ends it early, a NOTIFY too when `onNotify`. */
    pause(ms: number, onNotify: boolean) {
      return new Promise<void>((resolve) => {
        if (isStopping() || (onNotify && woken)) return resolve();
        const timer = setTimeout(done, ms);
        wakeUp = done;
        interruptible = onNotify;
        function done() {
          clearTimeout(timer);
          wakeUp = undefined;
          resolve();
        }
      });
    },
  };
}

export type RelayMetrics = ReturnType<typeof relayMetrics>;

/** Published events, and the lag (events not yet published, age of the oldest) as gauges. */
export function relayMetrics(name: string, topic: string) {
  const m = meter("rdm.relay");
  const attributes = { relay: name, topic };
  const published = m.createCounter("rdm.relay.published_events", { description: "Events published to Kafka" });
  const lagEvents = m.createObservableGauge("rdm.relay.lag_events", {
    description: "Events appended but not yet published",
  });
  const lagSeconds = m.createObservableGauge("rdm.relay.lag_seconds", {
    description: "Age of the oldest event not yet published",
    unit: "s",
  });
  const lag = { events: 0, oldest: null as Date | null };
  const observeEvents = (r: { observe(v: number, a: typeof attributes): void }) => r.observe(lag.events, attributes);
  const observeSeconds = (r: { observe(v: number, a: typeof attributes): void }) =>
    r.observe(lag.oldest ? (Date.now() - lag.oldest.getTime()) / 1000 : 0, attributes);
  lagEvents.addCallback(observeEvents);
  lagSeconds.addCallback(observeSeconds);
  return {
    lag,
    published: (count: number) => published.add(count, attributes),
    close() {
      lagEvents.removeCallback(observeEvents);
      lagSeconds.removeCallback(observeSeconds);
    },
  };
}
