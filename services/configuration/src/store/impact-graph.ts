import { type CiType, RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import type pg from "pg";
import { type Edge, impactDirection } from "../domain/impact.js";

/** What an impact answer shows of each reached item. */
export interface CiSummary {
  ciId: string;
  name: string;
  type: CiType;
  owner: string;
}

/** Position in the event store's commit order (see @rdm/relay README). */
interface CommitPosition {
  transactionId: string;
  globalPosition: number;
}

/** Stream type of configuration items (their ids are `ci-<uuid>`). */
const CI_STREAM_TYPE = "ci";

/** Above this many changed items, loading everything again is cheaper than patching. */
const FULL_RELOAD_THRESHOLD = 2_000;

/** Names sort as people read them (the default locale's collation). */
const byName = new Intl.Collator();

const ALL_TYPES = [
  RelationshipType.DEPENDS_ON,
  RelationshipType.RUNS_ON,
  RelationshipType.PART_OF,
  RelationshipType.CONNECTS_TO,
];

const edgeKey = (e: Edge) => `${e.sourceCiId}\u0000${e.type}\u0000${e.targetCiId}`;

interface RelationshipRow {
  source_ci_id: string;
  type: number;
  target_ci_id: string;
}
interface ItemRow {
  ci_id: string;
  name: string;
  type: number;
  owner: string;
}

/**
 * The relationship graph and each item's summary, held in memory for impact analysis, so a walk
 * over the whole CMDB is a walk over maps instead of a database round trip per level.
 *
 * It follows the event store: `refresh()` reads which CI streams got events after its checkpoint
 * (commit order) and reloads those items' rows and outgoing relationships from the read model
 * (written in the events' transaction; a relationship lives on its source's stream). It sees
 * every commit visible when it is called, so a caller reads its own writes, including other
 * replicas' writes. The checkpoint only moves past transactions below the snapshot's xmin (none
 * can commit before them later, see @rdm/relay), and events above it are read again next time:
 * reloading current rows is idempotent.
 */
export class ImpactGraph {
  /** Cause CI -> the relationships through which its failure spreads, keyed by edgeKey. */
  private readonly byCause = new Map<string, Map<string, Edge>>();
  /** Source CI -> its relationships, to replace them when the source changes. */
  private readonly bySource = new Map<string, Edge[]>();
  private readonly items = new Map<string, CiSummary>();
  /** Each name's place in collation order (equal names share it); undefined after items change. */
  private nameOrder: Map<string, number> | undefined;
  private checkpoint: CommitPosition | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly pool: pg.Pool) {}

  /** Brings the graph up to every commit visible now. Calls run one after another. */
  refresh(): Promise<void> {
    const run = this.queue.then(() => this.catchUp());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The relationships through which a failure of any of `causeIds` spreads, of the given types (all when empty). */
  impactEdges(causeIds: string[], types: RelationshipType[]): Edge[] {
    const allowed = new Set(types.length ? types : ALL_TYPES);
    const edges: Edge[] = [];
    for (const cause of causeIds) {
      for (const edge of this.byCause.get(cause)?.values() ?? []) if (allowed.has(edge.type)) edges.push(edge);
    }
    return edges;
  }

  summary(ciId: string): CiSummary | undefined {
    return this.items.get(ciId);
  }

  /**
   * The name's place in collation order, so sorting a whole-CMDB answer compares integers
   * instead of collating each pair (computed once after items change). Unknown names count as "".
   */
  nameRank(name: string): number {
    if (!this.nameOrder) {
      const names = [...new Set(["", ...[...this.items.values()].map((i) => i.name)])].sort(byName.compare);
      const order = new Map<string, number>();
      let rank = 0;
      names.forEach((n, i) => {
        if (i > 0 && byName.compare(names[i - 1] as string, n) !== 0) rank++;
        order.set(n, rank);
      });
      this.nameOrder = order;
    }
    return this.nameOrder.get(name) ?? 0;
  }

  private async catchUp(): Promise<void> {
    if (!this.checkpoint) await this.loadAll();
    const after = this.checkpoint as CommitPosition;
    const { rows } = await this.pool.query<{
      stream_id: string;
      transaction_id: string;
      global_position: string;
      final: boolean;
    }>(
      `SELECT stream_id, transaction_id::text AS transaction_id, global_position,
              transaction_id < pg_snapshot_xmin(pg_current_snapshot()) AS final
       FROM events e
       WHERE (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint) AND e.stream_type = $3
       ORDER BY e.transaction_id, e.global_position`,
      [after.transactionId, after.globalPosition, CI_STREAM_TYPE],
    );
    if (rows.length === 0) return;
    const changed = [...new Set(rows.map((r) => r.stream_id))];
    // A newer snapshot than the rows above: it holds all of them.
    if (changed.length > FULL_RELOAD_THRESHOLD) return this.loadAll();
    const [items, relationships] = await Promise.all([
      this.pool.query<ItemRow>("SELECT ci_id, name, type, owner FROM configuration_items WHERE ci_id = ANY($1)", [
        changed,
      ]),
      this.pool.query<RelationshipRow>(
        "SELECT source_ci_id, type, target_ci_id FROM ci_relationships WHERE source_ci_id = ANY($1)",
        [changed],
      ),
    ]);
    for (const source of changed) this.replaceOutgoing(source, []);
    this.addItems(items.rows);
    this.addRelationships(relationships.rows);
    const lastFinal = rows.filter((r) => r.final).at(-1);
    if (lastFinal) {
      this.checkpoint = { transactionId: lastFinal.transaction_id, globalPosition: Number(lastFinal.global_position) };
    }
  }

  /** Everything from one snapshot; the checkpoint is its xmin: every older transaction is in it. */
  private async loadAll(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      const horizon = await client.query<{ xmin: string }>(
        "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin",
      );
      const items = await client.query<ItemRow>("SELECT ci_id, name, type, owner FROM configuration_items");
      const relationships = await client.query<RelationshipRow>(
        "SELECT source_ci_id, type, target_ci_id FROM ci_relationships",
      );
      await client.query("COMMIT");
      this.byCause.clear();
      this.bySource.clear();
      this.items.clear();
      this.nameOrder = undefined;
      this.addItems(items.rows);
      this.addRelationships(relationships.rows);
      this.checkpoint = { transactionId: horizon.rows[0]?.xmin as string, globalPosition: 0 };
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }

  private addItems(rows: ItemRow[]): void {
    if (rows.length > 0) this.nameOrder = undefined;
    for (const r of rows) this.items.set(r.ci_id, { ciId: r.ci_id, name: r.name, type: r.type, owner: r.owner });
  }

  private addRelationships(rows: RelationshipRow[]): void {
    const bySource = new Map<string, Edge[]>();
    for (const r of rows) {
      const edge = { sourceCiId: r.source_ci_id, type: r.type, targetCiId: r.target_ci_id };
      const edges = bySource.get(edge.sourceCiId);
      if (edges) edges.push(edge);
      else bySource.set(edge.sourceCiId, [edge]);
    }
    for (const [source, edges] of bySource) this.replaceOutgoing(source, edges);
  }

  private replaceOutgoing(source: string, edges: Edge[]): void {
    for (const old of this.bySource.get(source) ?? [])
      this.byCause.get(impactDirection(old).cause)?.delete(edgeKey(old));
    if (edges.length === 0) this.bySource.delete(source);
    else this.bySource.set(source, edges);
    for (const edge of edges) {
      const cause = impactDirection(edge).cause;
      const spread = this.byCause.get(cause) ?? new Map<string, Edge>();
      spread.set(edgeKey(edge), edge);
      this.byCause.set(cause, spread);
    }
  }
}
