// Command → gateway visibility: the time from sending a gRPC command to the gateway's view
// stream (`/v1/views/events`, one SSE event per projected event, naming the views it changed and
// the request id of the command that caused it) announcing each view that command changed.
import { performance } from "node:perf_hooks";

export const VIEWS = ["overview", "calendar", "inventory", "kpis", "audit"] as const;

export interface ViewWatch {
  /** Call just before sending the command with this request id. */
  sent(requestId: string): void;
  /** Milliseconds per view, one per (command, view). */
  latencies(): Record<string, number[]>;
  /** Events read from the stream so far. */
  received(): number;
  close(): void;
}

/** Opens the view stream from now on; resolves once the gateway answered. */
export async function watchViews(gatewayUrl: string, token: string): Promise<ViewWatch> {
  const sentAt = new Map<string, number>();
  const seen = new Set<string>();
  const latencies: Record<string, number[]> = Object.fromEntries(VIEWS.map((v) => [v, []]));
  let received = 0;
  const abort = new AbortController();
  const response = await fetch(`${gatewayUrl}/v1/views/events`, {
    headers: { authorization: `Bearer ${token}`, accept: "text/event-stream" },
    signal: abort.signal,
  });
  if (!response.ok || !response.body) throw new Error(`view stream: HTTP ${response.status}`);
  const onEvent = (data: string) => {
    const at = performance.now();
    received++;
    const { requestId, views } = JSON.parse(data) as { requestId: string; views: string[] };
    const start = sentAt.get(requestId);
    if (start === undefined) return;
    for (const view of views) {
      const key = `${requestId} ${view}`;
      if (seen.has(key)) continue;
      seen.add(key);
      latencies[view]?.push(at - start);
    }
  };
  void readEvents(response.body, onEvent).catch(() => undefined); // ends with close()
  return {
    sent: (requestId) => void sentAt.set(requestId, performance.now()),
    latencies: () => latencies,
    received: () => received,
    close: () => abort.abort(),
  };
}

/** Calls `onData` with the data of each SSE event of `body` (text/event-stream framing). */
async function readEvents(body: ReadableStream<Uint8Array>, onData: (data: string) => void) {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const data = buffer
        .slice(0, end)
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice(6))
        .join("\n");
      if (data) onData(data);
      buffer = buffer.slice(end + 2);
      end = buffer.indexOf("\n\n");
    }
  }
}
