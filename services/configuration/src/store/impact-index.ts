import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { compareIds, type Edge, impactDirection } from "../domain/impact.js";

/** What an impact answer shows of each reached item. */
export interface CiSummary {
  ciId: string;
  name: string;
  type: number;
  owner: string;
}

/**
 * One configuration item of the graph, with its part of an ImpactedItem already encoded, so an
 * answer of thousands of items is copied from these instead of built and encoded field by field.
 */
export interface CiNode {
  readonly ciId: string;
  summary: CiSummary;
  /** ImpactedItem fields 1–4 (ci_id, name, type, owner), encoded. */
  head: Uint8Array;
  /** The whole ConfigurationItem as the read model keeps it encoded (an answer's root); none before its row. */
  item: Uint8Array | undefined;
  /** The id as a string field's value (length, then UTF-8), to follow any field's tag. */
  readonly id: Uint8Array;
  /** Its place in the index's node list and in the walk's per-node arrays. */
  readonly index: number;
  /** The relationships through which its failure spreads, by edgeKey. */
  readonly spreads: Map<string, Spread>;
  /** The same as two arrays (affected node indexes, relationship types); undefined after they change. */
  out: { affected: Int32Array; types: Uint8Array } | undefined;
}

interface Spread {
  affected: CiNode;
  type: RelationshipType;
}

/**
 * The CIs one walk reached, in the answer's order, as parallel arrays: item k (1..count) at index
 * k of each, the analysed CI at 0. No object per item, so a walk leaves little garbage behind.
 * The arrays belong to the index and the next walk reuses them: read a walk before walking again.
 */
export interface Walk {
  /** How many CIs it reached (the analysed one not counted). */
  readonly count: number;
  /** Node of each item (an index into `nodes`). */
  readonly node: Int32Array;
  readonly depth: Int32Array;
  /** The item it was reached from (an earlier item number; -1 for the analysed CI). */
  readonly parent: Int32Array;
  /** The relationship type it was reached by. */
  readonly type: Uint8Array;
  readonly nodes: readonly CiNode[];
}

export interface ItemRow {
  ci_id: string;
  name: string;
  type: number;
  owner: string;
  /** The encoded ConfigurationItem (configuration_items.item). */
  item?: Uint8Array;
}

export interface RelationshipRow {
  source_ci_id: string;
  type: number;
  target_ci_id: string;
}

/** Names sort as people read them (the default locale's collation). */
const byName = new Intl.Collator();

const ALL_TYPES = [
  RelationshipType.DEPENDS_ON,
  RelationshipType.RUNS_ON,
  RelationshipType.PART_OF,
  RelationshipType.CONNECTS_TO,
];

const edgeKey = (e: Edge) => `${e.sourceCiId}\u0000${e.type}\u0000${e.targetCiId}`;

function encodeHead({ ciId, name, type, owner }: CiSummary): Uint8Array {
  // protobuf-es's own encoding of ImpactedItem, which leaves out fields holding their default.
  const writer = new BinaryWriter().tag(1, WireType.LengthDelimited).string(ciId);
  if (name) writer.tag(2, WireType.LengthDelimited).string(name);
  if (type) writer.tag(3, WireType.Varint).int32(type);
  if (owner) writer.tag(4, WireType.LengthDelimited).string(owner);
  return writer.finish();
}

function outOf(node: CiNode): { affected: Int32Array; types: Uint8Array } {
  if (node.out) return node.out;
  const spreads = [...node.spreads.values()];
  node.out = {
    affected: Int32Array.from(spreads, (s) => s.affected.index),
    types: Uint8Array.from(spreads, (s) => s.type),
  };
  return node.out;
}

/**
 * The relationship graph and each item's summary, in memory, with the impact walk over it (the
 * kernel's rule, see transitiveDependents, without a lookup per level or a path per item). A walk
 * keeps its marks in typed arrays indexed by node, which stay in the CPU's caches where marks on
 * ten thousand scattered node objects would not.
 */
export class ImpactIndex {
  private readonly nodes = new Map<string, CiNode>();
  private list: CiNode[] = [];
  /** Source CI -> its relationships, to replace them when the source changes. */
  private readonly bySource = new Map<string, Edge[]>();
  private ranked = false;
  /** Per node index: place in (name as people read them, id) order, and in id order. */
  private rankOf = new Int32Array(0);
  private idRankOf = new Int32Array(0);
  /** Per (name, id) rank: the node index. */
  private byRank = new Int32Array(0);
  /** Per node index: the walk that last reached it, the depth, parent item and type it was reached by. */
  private walkOf = new Int32Array(0);
  private depthOf = new Int32Array(0);
  private parentOf = new Int32Array(0);
  private typeOf = new Uint8Array(0);
  /** Per node index: a level's nodes, then their ranks while they are put in order. */
  private reached = new Int32Array(0);
  private walks = 0;
  /** The last walk's items (see Walk); sized with the marks above. */
  private result = {
    count: 0,
    node: new Int32Array(0),
    depth: new Int32Array(0),
    parent: new Int32Array(0),
    type: new Uint8Array(0),
    nodes: this.list,
  };

  clear(): void {
    this.nodes.clear();
    this.list = [];
    this.bySource.clear();
    this.ranked = false;
  }

  addItems(rows: ItemRow[]): void {
    if (rows.length > 0) this.ranked = false;
    for (const r of rows) {
      const node = this.node(r.ci_id);
      node.summary = { ciId: r.ci_id, name: r.name, type: r.type, owner: r.owner };
      node.head = encodeHead(node.summary);
      node.item = r.item;
    }
  }

  /** The encoded ConfigurationItem of a CI that has a row, for an answer's root. */
  item(ciId: string): Uint8Array | undefined {
    return this.nodes.get(ciId)?.item;
  }

  /** Sets the outgoing relationships of every source in `sources` to those among `rows`. */
  replaceOutgoing(sources: Iterable<string>, rows: RelationshipRow[]): void {
    const bySource = new Map<string, Edge[]>();
    for (const source of sources) bySource.set(source, []);
    for (const r of rows) {
      const edge = { sourceCiId: r.source_ci_id, type: r.type, targetCiId: r.target_ci_id };
      const edges = bySource.get(edge.sourceCiId);
      if (edges) edges.push(edge);
      else bySource.set(edge.sourceCiId, [edge]);
    }
    for (const [source, edges] of bySource) this.replaceOutgoingOf(source, edges);
  }

  /**
   * Every CI a failure of `rootId` spreads to through relationships of `types` (all when empty),
   * up to `maxDepth` (0 = unlimited), level by level: each level in (name, id) order. Among equally
   * short paths, the one through the smallest parent id wins, then the smallest relationship type.
   */
  walk(rootId: string, types: RelationshipType[], maxDepth: number): Walk {
    const result = this.result;
    result.count = 0;
    const root = this.nodes.get(rootId);
    if (!root) return result;
    this.rank();
    result.nodes = this.list;
    const allowed = new Uint8Array(256);
    for (const type of types.length ? types : ALL_TYPES) allowed[type] = 1;
    const { walkOf, depthOf, parentOf, typeOf, idRankOf, rankOf, byRank, reached } = this;
    const { node, depth: depthAt, parent: parentAt, type: typeAt } = result;
    const walk = ++this.walks;
    walkOf[root.index] = walk;
    depthOf[root.index] = 0;
    node[0] = root.index;
    depthAt[0] = 0;
    parentAt[0] = -1;
    typeAt[0] = RelationshipType.UNSPECIFIED;
    // The frontier is items [levelStart, levelEnd): the level before.
    let levelStart = 0;
    let levelEnd = 1;
    for (let depth = 1; levelEnd > levelStart && (maxDepth === 0 || depth <= maxDepth); depth++) {
      let n = 0;
      for (let item = levelStart; item < levelEnd; item++) {
        const { affected, types: spreadTypes } = outOf(this.list[node[item] as number] as CiNode);
        const parentIdRank = idRankOf[node[item] as number] as number;
        for (let j = 0; j < affected.length; j++) {
          const type = spreadTypes[j] as number;
          if (!allowed[type]) continue;
          const at = affected[j] as number;
          if (walkOf[at] !== walk) {
            walkOf[at] = walk;
            depthOf[at] = depth;
            parentOf[at] = item;
            typeOf[at] = type;
            reached[n++] = at;
            continue;
          }
          if (depthOf[at] !== depth) continue;
          // Reached before at this depth: the smallest parent id wins, then the smallest type.
          const known = idRankOf[node[parentOf[at] as number] as number] as number;
          if (parentIdRank < known || (parentIdRank === known && type < (typeOf[at] as number))) {
            parentOf[at] = item;
            typeOf[at] = type;
          }
        }
      }
      // The level in (name, id) order: a native sort of the nodes' integer ranks.
      for (let i = 0; i < n; i++) reached[i] = rankOf[reached[i] as number] as number;
      reached.subarray(0, n).sort();
      for (let i = 0; i < n; i++) {
        const at = byRank[reached[i] as number] as number;
        const item = levelEnd + i;
        node[item] = at;
        depthAt[item] = depth;
        parentAt[item] = parentOf[at] as number;
        typeAt[item] = typeOf[at] as number;
      }
      levelStart = levelEnd;
      levelEnd += n;
    }
    result.count = levelEnd - 1;
    return result;
  }

  private node(ciId: string): CiNode {
    let node = this.nodes.get(ciId);
    if (!node) {
      // A CI known only from a relationship so far shows as the answer always showed it: no name.
      const summary = { ciId, name: "", type: 0, owner: "" };
      const id = new BinaryWriter().string(ciId).finish();
      node = {
        ciId,
        summary,
        head: encodeHead(summary),
        item: undefined,
        id,
        index: this.list.length,
        spreads: new Map(),
        out: undefined,
      };
      this.nodes.set(ciId, node);
      this.list.push(node);
      this.ranked = false;
    }
    return node;
  }

  private replaceOutgoingOf(source: string, edges: Edge[]): void {
    for (const old of this.bySource.get(source) ?? []) {
      const cause = this.nodes.get(impactDirection(old).cause);
      cause?.spreads.delete(edgeKey(old));
      if (cause) cause.out = undefined;
    }
    if (edges.length === 0) this.bySource.delete(source);
    else this.bySource.set(source, edges);
    for (const edge of edges) {
      const { cause, affected } = impactDirection(edge);
      const node = this.node(cause);
      node.spreads.set(edgeKey(edge), { affected: this.node(affected), type: edge.type });
      node.out = undefined;
    }
  }

  /** Ranks every node by name as people read them (equal names by id), once after items change. */
  private rank(): void {
    if (this.ranked) return;
    // Collating each distinct name once, then comparing integers, is far cheaper than collating pairs.
    const names = [...new Set(this.list.map((n) => n.summary.name))].sort(byName.compare);
    const nameRank = new Map<string, number>();
    names.forEach((n, i) => {
      const previous = names[i - 1];
      nameRank.set(
        n,
        previous !== undefined && byName.compare(previous, n) === 0 ? (nameRank.get(previous) as number) : i,
      );
    });
    const count = this.list.length;
    const byId = this.list.map((n) => n.index).sort((a, b) => compareIds(this.idOf(a), this.idOf(b)));
    this.idRankOf = new Int32Array(count);
    byId.forEach((at, i) => {
      this.idRankOf[at] = i;
    });
    const key = this.list.map((n) => nameRank.get(n.summary.name) as number);
    this.byRank = Int32Array.from(byId).sort(
      (a, b) => (key[a] as number) - (key[b] as number) || (this.idRankOf[a] as number) - (this.idRankOf[b] as number),
    );
    this.rankOf = new Int32Array(count);
    this.byRank.forEach((at, i) => {
      this.rankOf[at] = i;
    });
    if (this.walkOf.length < count) {
      // Room for the nodes to come, so adding a few does not reallocate the walk's marks.
      const room = Math.max(count * 2, 1024);
      this.walkOf = new Int32Array(room);
      this.depthOf = new Int32Array(room);
      this.parentOf = new Int32Array(room);
      this.typeOf = new Uint8Array(room);
      this.reached = new Int32Array(room);
      // A walk reaches each node at most once.
      const result = this.result;
      result.node = new Int32Array(room);
      result.depth = new Int32Array(room);
      result.parent = new Int32Array(room);
      result.type = new Uint8Array(room);
    }
    this.ranked = true;
  }

  private idOf(at: number): string {
    return (this.list[at] as CiNode).ciId;
  }
}
