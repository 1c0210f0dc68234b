// Seeding the configuration benchmark's CMDB: through ImportConfiguration (the bulk path), or
// one RegisterConfigurationItem / AddRelationship call per item (the figure before it).
import { randomUUID } from "node:crypto";
import { loadavg } from "node:os";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { GrpcClient } from "@rdm/grpc";
import { CiType, type RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import type {
  ConfigurationService,
  ImportItemSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { sampleCpu } from "./processes.js";

type Client = GrpcClient<(typeof ConfigurationService)["method"]>;
type Item = MessageInitShape<typeof ImportItemSchema>;
/** Source index, relationship type, target index. */
export type Edge = [number, RelationshipType, number];

/**
 * Items per message as the proto allows at most; calls of half the most it allows, so the
 * 10,000 CIs too go in two calls at a time, not one.
 */
const ITEMS_PER_MESSAGE = 1_000;
const ITEMS_PER_CALL = 5_000;

const TYPES = [
  CiType.BUSINESS_SERVICE,
  CiType.SERVICE,
  CiType.APPLICATION,
  CiType.COMPONENT,
  CiType.HOST,
  CiType.DATABASE,
];

const ciFields = (i: number) => ({
  name: `ci-${i}`,
  type: TYPES[i % TYPES.length] as CiType,
  owner: `team-${i % 50}`,
  attributes: { index: String(i) },
});

/** Runs `work(i)` for i in [0, n) with at most `concurrency` in flight. */
export async function inParallel(n: number, concurrency: number, work: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < n; i = next++) await work(i);
    }),
  );
}

/**
 * CPU seconds used so far by the Node processes of the run (this client, the service, the broker
 * launcher) and by PostgreSQL's processes (see sampleCpu): on a busy machine the CPU an item
 * costs says more than the wall-clock rate.
 */
export function cpuSeconds(): { node: number; database: number } {
  const sample = sampleCpu([]);
  const database = sample.get("postgres") ?? 0;
  const node = [...sample.values()].reduce((sum, seconds) => sum + seconds, 0) - database;
  return { node, database };
}

export interface Seeded {
  ids: string[];
  ciSeconds: number;
  relationshipSeconds: number;
  /** CPU seconds (Node processes, PostgreSQL) the CIs and the relationships took. */
  ciCpu: { node: number; database: number };
  relationshipCpu: { node: number; database: number };
}

const since = (before: { node: number; database: number }) => {
  const now = cpuSeconds();
  return { node: now.node - before.node, database: now.database - before.database };
};

/** Imports `items` in calls of ITEMS_PER_CALL, `concurrency` calls at a time; fails on any refused item. */
async function importAll(client: Client, calls: Item[][], concurrency: number) {
  const results: { ciId: string }[][] = new Array(calls.length);
  await inParallel(calls.length, concurrency, async (c) => {
    const items = calls[c] as Item[];
    const messages = [];
    for (let i = 0; i < items.length; i += ITEMS_PER_MESSAGE)
      messages.push({ items: items.slice(i, i + ITEMS_PER_MESSAGE) });
    const response = await client.importConfiguration(messages);
    const refused = response.results.find((r) => r.error);
    if (refused) throw new Error(`import refused item ${refused.requestId}: ${refused.error?.message}`);
    results[c] = response.results;
  });
  return results.flat();
}

const chunks = <T>(list: T[], size: number) =>
  Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

/**
 * Through ImportConfiguration: the CIs, then the relationships, which name their CIs by the
 * request ids of their registrations (as a discovery tool would, without waiting for ids).
 * Calls run two at a time; each relationship call holds whole sources, so no two concurrent
 * calls write one stream.
 */
export async function seedByImport(client: Client, ciCount: number, edges: Edge[]): Promise<Seeded> {
  const registrations = Array.from({ length: ciCount }, () => randomUUID());
  let cpu = cpuSeconds();
  let t0 = performance.now();
  const registered = await importAll(
    client,
    chunks(
      registrations.map(
        (requestId, i): Item => ({ item: { case: "registerConfigurationItem", value: { requestId, ...ciFields(i) } } }),
      ),
      ITEMS_PER_CALL,
    ),
    2,
  );
  const ciSeconds = (performance.now() - t0) / 1000;
  const ciCpu = since(cpu);
  const bySource = [...edges].sort((a, b) => a[0] - b[0]);
  const ref = (i: number) => ({
    reference: { case: "registrationRequestId" as const, value: registrations[i] as string },
  });
  const items = bySource.map(
    ([s, type, t]): Item => ({
      item: { case: "addRelationship", value: { requestId: randomUUID(), source: ref(s), type, target: ref(t) } },
    }),
  );
  // Calls cut at a change of source, so a source's relationships are all in one call.
  const calls: Item[][] = [];
  let start = 0;
  while (start < items.length) {
    let end = Math.min(start + ITEMS_PER_CALL, items.length);
    while (end < items.length && end > start + 1 && (bySource[end] as Edge)[0] === (bySource[end - 1] as Edge)[0])
      end--;
    calls.push(items.slice(start, end));
    start = end;
  }
  cpu = cpuSeconds();
  t0 = performance.now();
  await importAll(client, calls, 2);
  const relationshipSeconds = (performance.now() - t0) / 1000;
  return { ids: registered.map((r) => r.ciId), ciSeconds, relationshipSeconds, ciCpu, relationshipCpu: since(cpu) };
}

/** One call per CI and per relationship, 16 in flight (one writer per source: no pointless conflicts). */
export async function seedPerItem(client: Client, ciCount: number, edges: Edge[]): Promise<Seeded> {
  const ids: string[] = new Array(ciCount);
  let cpu = cpuSeconds();
  let t0 = performance.now();
  await inParallel(ciCount, 16, async (i) => {
    const { item } = await client.registerConfigurationItem({ requestId: randomUUID(), ...ciFields(i) });
    ids[i] = item?.ciId as string;
  });
  const ciSeconds = (performance.now() - t0) / 1000;
  const ciCpu = since(cpu);
  const bySource = new Map<number, Edge[]>();
  for (const edge of edges) bySource.set(edge[0], [...(bySource.get(edge[0]) ?? []), edge]);
  const sources = [...bySource.values()];
  cpu = cpuSeconds();
  t0 = performance.now();
  await inParallel(sources.length, 16, async (i) => {
    for (const [s, type, t] of sources[i] as Edge[]) {
      await client.addRelationship({
        requestId: randomUUID(),
        sourceCiId: ids[s] as string,
        type,
        targetCiId: ids[t] as string,
      });
    }
  });
  const relationshipSeconds = (performance.now() - t0) / 1000;
  return { ids, ciSeconds, relationshipSeconds, ciCpu, relationshipCpu: since(cpu) };
}

/** The seeding line: rates, CPU per 1,000 items (this process + PostgreSQL), load average. */
export function seedingReport(
  seeded: Seeded,
  ciCount: number,
  relationshipCount: number,
  perItem: boolean,
  loadBefore: number[],
): string {
  const load = (l: number[]) => l.map((n) => n.toFixed(1)).join(" ");
  const perThousand = (cpu: { node: number; database: number }, n: number) =>
    `${((cpu.node * 1000) / n).toFixed(2)} s + ${((cpu.database * 1000) / n).toFixed(2)} s`;
  const how = perItem ? "one call per item, 16 in flight" : "ImportConfiguration, 2 calls in flight";
  return [
    `seeded ${ciCount} CIs in ${seeded.ciSeconds.toFixed(1)} s (${(ciCount / seeded.ciSeconds).toFixed(0)}/s)`,
    ` and ${relationshipCount} relationships in ${seeded.relationshipSeconds.toFixed(1)} s (${(relationshipCount / seeded.relationshipSeconds).toFixed(0)}/s), ${how};`,
    ` CPU per 1,000 (client, service and broker + PostgreSQL): CIs ${perThousand(seeded.ciCpu, ciCount)}, relationships ${perThousand(seeded.relationshipCpu, relationshipCount)};`,
    ` load average ${load(loadBefore)} before, ${load(loadavg())} after`,
  ].join("");
}
