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
  /** The id as a string field's value (length, then UTF-8), to follow any field's tag. */
  readonly id: Uint8Array;
  /** Place in (name as people read them, id) order; valid while the index's ranks are. */
  rank: number;
  /** The relationships through which its failure spreads, by edgeKey. */
  readonly spreads: Map<string, Spread>;
  /** The same as an array (iterated far faster); undefined after they change. */
  spreadList: Spread[] | undefined;
  /** The walk that last reached it, and how (a walk marks nodes instead of keeping sets). */
  walk: number;
  visit: Visit | undefined;
}

interface Spread {
  affected: CiNode;
  type: RelationshipType;
}

/** A CI reached by a walk: at its shortest depth, through `parent` by a relationship of `type`. */
export class Visit {
  // Where the answer's encoder put this item's path and relationship types (see impact-response.ts).
  pathSize = 0;
  typesSize = 0;
  pathAt = -1;
  typesAt = -1;
  itemSize = 0;

  constructor(
    readonly node: CiNode,
    readonly depth: number,
    readonly parent: Visit | undefined,
    readonly type: RelationshipType,
  ) {}
}

export interface ItemRow {
  ci_id: string;
  name: string;
  type: number;
  owner: string;
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

function spreadsOf(node: CiNode): Spread[] {
  node.spreadList ??= [...node.spreads.values()];
  return node.spreadList;
}

/**
 * The relationship graph and each item's summary, in memory, with the impact walk over it (the
 * kernel's rule, see transitiveDependents, without a lookup per level or a path per item).
 */
export class ImpactIndex {
  private readonly nodes = new Map<string, CiNode>();
  /** Source CI -> its relationships, to replace them when the source changes. */
  private readonly bySource = new Map<string, Edge[]>();
  private ranked = false;
  private walks = 0;

  clear(): void {
    this.nodes.clear();
    this.bySource.clear();
    this.ranked = false;
  }

  addItems(rows: ItemRow[]): void {
    if (rows.length > 0) this.ranked = false;
    for (const r of rows) {
      const node = this.node(r.ci_id);
      node.summary = { ciId: r.ci_id, name: r.name, type: r.type, owner: r.owner };
      node.head = encodeHead(node.summary);
    }
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
  walk(rootId: string, types: RelationshipType[], maxDepth: number): Visit[][] {
    const root = this.nodes.get(rootId);
    if (!root) return [];
    this.rank();
    const allowed: boolean[] = [];
    for (const type of types.length ? types : ALL_TYPES) allowed[type] = true;
    const walk = ++this.walks;
    root.walk = walk;
    root.visit = new Visit(root, 0, undefined, RelationshipType.UNSPECIFIED);
    const levels: Visit[][] = [];
    let frontier = [root.visit];
    for (let depth = 1; frontier.length > 0 && (maxDepth === 0 || depth <= maxDepth); depth++) {
      const level: CiNode[] = [];
      for (const parent of frontier) {
        for (const { affected, type } of spreadsOf(parent.node)) {
          if (!allowed[type]) continue;
          const known = affected.walk === walk ? (affected.visit as Visit) : undefined;
          if (known && known.depth < depth) continue;
          const order = known ? compareIds(parent.node.ciId, (known.parent as Visit).node.ciId) : -1;
          if (order < 0 || (order === 0 && type < (known as Visit).type)) {
            if (!known) level.push(affected);
            affected.walk = walk;
            affected.visit = new Visit(affected, depth, parent, type);
          }
        }
      }
      frontier = level.map((node) => node.visit as Visit).sort((a, b) => a.node.rank - b.node.rank);
      if (frontier.length > 0) levels.push(frontier);
    }
    return levels;
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
        id,
        rank: 0,
        spreads: new Map(),
        spreadList: undefined,
        walk: 0,
        visit: undefined,
      };
      this.nodes.set(ciId, node);
      this.ranked = false;
    }
    return node;
  }

  private replaceOutgoingOf(source: string, edges: Edge[]): void {
    for (const old of this.bySource.get(source) ?? []) {
      const cause = this.nodes.get(impactDirection(old).cause);
      cause?.spreads.delete(edgeKey(old));
      if (cause) cause.spreadList = undefined;
    }
    if (edges.length === 0) this.bySource.delete(source);
    else this.bySource.set(source, edges);
    for (const edge of edges) {
      const { cause, affected } = impactDirection(edge);
      const node = this.node(cause);
      node.spreads.set(edgeKey(edge), { affected: this.node(affected), type: edge.type });
      node.spreadList = undefined;
    }
  }

  /** Ranks every node by name as people read them (equal names by id), once after items change. */
  private rank(): void {
    if (this.ranked) return;
    // Collating each distinct name once, then comparing integers, is far cheaper than collating pairs.
    const names = [...new Set([...this.nodes.values()].map((n) => n.summary.name))].sort(byName.compare);
    const nameRank = new Map<string, number>();
    names.forEach((n, i) => {
      const previous = names[i - 1];
      nameRank.set(
        n,
        previous !== undefined && byName.compare(previous, n) === 0 ? (nameRank.get(previous) as number) : i,
      );
    });
    const nodes = [...this.nodes.values()];
    const key = new Map(nodes.map((n) => [n, nameRank.get(n.summary.name) as number]));
    nodes.sort((a, b) => (key.get(a) as number) - (key.get(b) as number) || compareIds(a.ciId, b.ciId));
    nodes.forEach((n, i) => {
      n.rank = i;
    });
    this.ranked = true;
  }
}
