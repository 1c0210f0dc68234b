// Append -> gateway visibility for the platform bench: the lag from a RegisterRelease's answer
// to the release at `GET /v1/releases/:id`, beside the lag to its event on the topic (which
// the relay publishes), so the gateway's share is seen; and the gateway's CPU when idle.
import type { GrpcClient } from "@rdm/grpc";
import { createKafka, RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import type { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import type { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { type ServiceProcess, sampleCpu } from "./processes.js";
import { ms, percentile } from "./support.js";

type ReleaseClient = GrpcClient<(typeof ReleaseService)["method"]>;
export type ReleaseRequest = () => { requestId: string; title: string; type: ReleaseType; owner: string };

export interface Probe {
  client: ReleaseClient;
  gatewayUrl: string;
  token: string;
  request: ReleaseRequest;
  /** When each release's first event reached the topic (performance.now()), by release id. */
  onTopic: Map<string, number>;
}

/**
 * Records when each release's first event reaches the release topic: a consumer of its own,
 * with a short fetch wait (the mock broker answers a fetch when its wait ends).
 */
export async function watchReleaseTopic(brokers: string[]) {
  const kafka = createKafka({ brokers, clientId: "bench-topic-watch", logger: createLogger("bench", "warn") });
  const consumer = kafka.consumer({ groupId: `bench-watch-${process.pid}`, maxWaitTimeInMs: 5 });
  const onTopic = new Map<string, number>();
  await consumer.connect();
  await consumer.subscribe({ topic: RELEASE_EVENTS_TOPIC, fromBeginning: false });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const now = performance.now();
      for (const message of batch.messages) {
        const key = message.key?.toString();
        if (key && !onTopic.has(key)) onTopic.set(key, now);
      }
    },
  });
  return { onTopic, stop: () => consumer.disconnect() };
}

const summary = (lags: number[]) => {
  lags.sort((a, b) => a - b);
  return `p50 ${ms(percentile(lags, 50))}, p99 ${ms(percentile(lags, 99))}, max ${ms(lags.at(-1) ?? Number.NaN)}`;
};

/** Polls the gateway until the release is there; the lag since `t0`. */
async function untilVisible(probe: Probe, releaseId: string, t0: number, timeoutMs: number): Promise<number> {
  for (;;) {
    const response = await fetch(`${probe.gatewayUrl}/v1/releases/${releaseId}`, {
      headers: { authorization: `Bearer ${probe.token}` },
    });
    await response.arrayBuffer();
    if (response.status === 200) return performance.now() - t0;
    const elapsed = performance.now() - t0;
    if (elapsed > timeoutMs) throw new Error("release never became visible at the gateway");
    // Polled at a twentieth of the lag so far (overstating it by at most 5%): polling without
    // pause costs the gateway, whose CPU is measured, as much as it projects under load.
    await new Promise((resolve) => setTimeout(resolve, Math.min(elapsed / 20, 50)));
  }
}

/**
 * Lag from the append (the RPC's response) to visibility at the gateway, one release at a time:
 * `count` releases, or fewer when `until()` says stop first; and to its event on the topic.
 */
export async function gatewayVisibility(
  label: string,
  probe: Probe,
  count: number,
  until: () => boolean = () => false,
  timeoutMs = 30_000,
) {
  const lags: number[] = [];
  const topicLags: number[] = [];
  while (lags.length < count && !until()) {
    const { release } = await probe.client.registerRelease(probe.request());
    const releaseId = release?.releaseId ?? "";
    const t0 = performance.now();
    lags.push(await untilVisible(probe, releaseId, t0, timeoutMs));
    const onTopic = probe.onTopic.get(releaseId);
    // On the topic before the answer arrived: no lag.
    if (onTopic !== undefined) topicLags.push(Math.max(0, onTopic - t0));
  }
  console.log(`append -> gateway visibility, ${label}, ${lags.length} releases: ${summary(lags)}`);
  if (topicLags.length) console.log(`  of which append -> on the topic: ${summary(topicLags)}`);
}

/** The gateway's CPU while nothing is appended: what its fetch wait costs when idle. */
export async function idleCpu(gateway: ServiceProcess, seconds: number) {
  const before = sampleCpu([gateway]).get("gateway service") ?? 0;
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const spent = (sampleCpu([gateway]).get("gateway service") ?? 0) - before;
  const wait = process.env.GATEWAY_FETCH_MAX_WAIT_MS ?? "unset";
  console.log(
    `gateway idle (GATEWAY_FETCH_MAX_WAIT_MS=${wait}): ${((spent / seconds) * 1000).toFixed(1)} ms CPU per second`,
  );
}
