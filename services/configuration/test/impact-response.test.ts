// The impact answer written straight to bytes from the in-memory index must be, byte for byte,
// the message the kernel's walk gives once built and encoded by protobuf-es (sets, order, paths).
import { create, toBinary } from "@bufbuild/protobuf";
import { type Timestamp, TimestampSchema, timestampFromMs } from "@bufbuild/protobuf/wkt";
import {
  CiType,
  ConfigurationItemSchema,
  RelationshipType,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  AnalyzeImpactResponseSchema,
  ImpactedItemSchema,
  ImpactPathDetail,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { encodeImpactResponse } from "../src/api/impact-response.js";
import { compareIds, type Edge, impactDirection, transitiveDependents } from "../src/domain/impact.js";
import { ImpactIndex, type ItemRow, type RelationshipRow } from "../src/store/impact-index.js";

// Deterministic pseudo-random numbers (mulberry32), so a failure can be replayed.
function randomFrom(start: number) {
  let seed = start;
  return (n: number) => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

const TYPES = [
  RelationshipType.DEPENDS_ON,
  RelationshipType.RUNS_ON,
  RelationshipType.PART_OF,
  RelationshipType.CONNECTS_TO,
];
// Names that collate as people read them, not as code units: case, accents, equal names, none.
const NAMES = ["api", "API", "Api", "ápi", "db", "Db", "web", "zeta", "Éclair", "eclair", ""];

function randomCmdb(seed: number, ciCount: number, relationshipCount: number) {
  const random = randomFrom(seed);
  // Ids of two lengths, so varint lengths and ordinal order differ from creation order.
  const ids = Array.from({ length: ciCount }, (_, i) => (i % 3 ? `ci-${random(1e6)}-${i}` : `c${i}`));
  // The last few CIs have no row: a relationship can name a CI the graph has no row for yet.
  const items: ItemRow[] = ids.slice(0, ciCount - 3).map((ci_id) => ({
    ci_id,
    name: NAMES[random(NAMES.length)] as string,
    type: random(7), // CiType, UNSPECIFIED included
    owner: random(4) ? `team-${random(5)}` : "",
  }));
  const relationships = new Map<string, RelationshipRow>();
  while (relationships.size < relationshipCount) {
    const [s, t] = [ids[random(ciCount)] as string, ids[random(ciCount)] as string];
    const type = TYPES[random(TYPES.length)] as RelationshipType;
    if (s !== t) relationships.set(`${s}|${type}|${t}`, { source_ci_id: s, type, target_ci_id: t });
  }
  return { ids, items, relationships: [...relationships.values()] };
}

/** The answer as the handler built it before: the kernel's walk, then sorted by depth, name, id. */
async function expectedAnswer(
  root: Uint8Array,
  rootId: string,
  cmdb: ReturnType<typeof randomCmdb>,
  types: RelationshipType[],
  maxDepth: number,
  detail = ImpactPathDetail.UNSPECIFIED,
  asOf = AS_OF,
) {
  const byName = new Intl.Collator();
  const edges: Edge[] = cmdb.relationships.map((r) => ({
    sourceCiId: r.source_ci_id,
    type: r.type,
    targetCiId: r.target_ci_id,
  }));
  const items = new Map(cmdb.items.map((i) => [i.ci_id, i]));
  const reached = await transitiveDependents(
    rootId,
    async (causes) =>
      edges.filter((e) => causes.includes(impactDirection(e).cause) && (types.length === 0 || types.includes(e.type))),
    { maxDepth },
  );
  const impacted = reached
    .map((r) => {
      const ci = items.get(r.ciId);
      const item = create(ImpactedItemSchema, {
        ...r,
        name: ci?.name ?? "",
        type: ci?.type ?? 0,
        owner: ci?.owner ?? "",
      });
      if (detail === ImpactPathDetail.PARENT) {
        item.parentCiId = r.path.at(-2) as string;
        item.parentRelationship = r.pathRelationships.at(-1) as RelationshipType;
        item.path = [];
        item.pathRelationships = [];
      }
      return item;
    })
    .sort((a, b) => a.depth - b.depth || byName.compare(a.name, b.name) || compareIds(a.ciId, b.ciId));
  return toBinary(
    AnalyzeImpactResponseSchema,
    create(AnalyzeImpactResponseSchema, {
      root: fromRoot(root),
      impacted,
      impactedBusinessServiceIds: impacted.filter((i) => i.type === CiType.BUSINESS_SERVICE).map((i) => i.ciId),
      asOf,
    }),
  );
}

const AS_OF = timestampFromMs(1_764_806_400_123);
const encodedTime = (time: Timestamp) => toBinary(TimestampSchema, time);
const AS_OF_BYTES = encodedTime(AS_OF);

const fromRoot = (bytes: Uint8Array) => create(ConfigurationItemSchema, { ciId: new TextDecoder().decode(bytes) });

test.each([
  [1, [], 0, ImpactPathDetail.UNSPECIFIED],
  [2, [], 0, ImpactPathDetail.UNSPECIFIED],
  [3, [], 2, ImpactPathDetail.UNSPECIFIED],
  [4, [RelationshipType.PART_OF, RelationshipType.RUNS_ON], 0, ImpactPathDetail.UNSPECIFIED],
  [6, [], 0, ImpactPathDetail.PARENT],
  [7, [RelationshipType.DEPENDS_ON], 3, ImpactPathDetail.PARENT],
] as const)(
  "seed %d: the same bytes as the message built from the kernel's walk",
  async (seed, types, maxDepth, detail) => {
    const cmdb = randomCmdb(seed, 300, 900);
    const index = new ImpactIndex();
    index.addItems(cmdb.items);
    index.replaceOutgoing([], cmdb.relationships);
    for (const rootId of cmdb.ids.slice(0, 12)) {
      const root = new TextEncoder().encode(rootId);
      // as_of of every size: the epoch (an empty Timestamp), seconds only, seconds and nanos.
      const asOf = timestampFromMs(seed === 1 ? 0 : seed * 1_000_000_000 + (seed % 2) * 7);
      const encoded = encodeImpactResponse(
        toBinary(ConfigurationItemSchema, fromRoot(root)),
        index.walk(rootId, [...types], maxDepth),
        detail,
        encodedTime(asOf),
      );
      const expected = await expectedAnswer(root, rootId, cmdb, [...types], maxDepth, detail, asOf);
      expect(Buffer.from(encoded).equals(expected)).toBe(true);
    }
  },
);

test("changed items and relationships show in the next walk, and removed relationships no longer do", async () => {
  const cmdb = randomCmdb(5, 200, 600);
  const index = new ImpactIndex();
  index.addItems(cmdb.items);
  index.replaceOutgoing([], cmdb.relationships);
  // Every relationship of the first 50 sources goes; their items get new names.
  const sources = new Set(cmdb.ids.slice(0, 50));
  index.replaceOutgoing(sources, []);
  const renamed = cmdb.items.map((i) => (sources.has(i.ci_id) ? { ...i, name: `renamed ${i.name}` } : i));
  index.addItems(renamed.filter((i) => sources.has(i.ci_id)));
  const after = {
    ...cmdb,
    items: renamed,
    relationships: cmdb.relationships.filter((r) => !sources.has(r.source_ci_id)),
  };
  for (const rootId of cmdb.ids.slice(40, 60)) {
    const root = toBinary(ConfigurationItemSchema, fromRoot(new TextEncoder().encode(rootId)));
    const encoded = encodeImpactResponse(root, index.walk(rootId, [], 0), ImpactPathDetail.UNSPECIFIED, AS_OF_BYTES);
    const expected = await expectedAnswer(new TextEncoder().encode(rootId), rootId, after, [], 0);
    expect(Buffer.from(encoded).equals(expected)).toBe(true);
  }
});

test("a graph that grows past the room of its first walks still answers as the kernel's walk", async () => {
  const cmdb = randomCmdb(8, 1500, 4000);
  const index = new ImpactIndex();
  const first = new Set(cmdb.ids.slice(0, 100));
  index.addItems(cmdb.items.filter((i) => first.has(i.ci_id)));
  index.replaceOutgoing(
    [],
    cmdb.relationships.filter((r) => first.has(r.source_ci_id) && first.has(r.target_ci_id)),
  );
  const root = (ciId: string) => toBinary(ConfigurationItemSchema, fromRoot(new TextEncoder().encode(ciId)));
  // An unknown CI reaches nothing: the answer is its root alone.
  const alone = encodeImpactResponse(
    root("unknown"),
    index.walk("unknown", [], 0),
    ImpactPathDetail.UNSPECIFIED,
    AS_OF_BYTES,
  );
  expect(
    Buffer.from(alone).equals(
      Buffer.from(
        toBinary(
          AnalyzeImpactResponseSchema,
          create(AnalyzeImpactResponseSchema, { root: fromRoot(new TextEncoder().encode("unknown")), asOf: AS_OF }),
        ),
      ),
    ),
  ).toBe(true);
  index.walk(cmdb.ids[0] as string, [], 0);
  // Then 1,400 more CIs: more than the room the first walk's arrays were made with.
  index.addItems(cmdb.items);
  index.replaceOutgoing(cmdb.ids, cmdb.relationships);
  for (const rootId of cmdb.ids.slice(0, 12)) {
    const encoded = encodeImpactResponse(
      root(rootId),
      index.walk(rootId, [], 0),
      ImpactPathDetail.UNSPECIFIED,
      AS_OF_BYTES,
    );
    const expected = await expectedAnswer(new TextEncoder().encode(rootId), rootId, cmdb, [], 0);
    expect(Buffer.from(encoded).equals(expected)).toBe(true);
  }
});
