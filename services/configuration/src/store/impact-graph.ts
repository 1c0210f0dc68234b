import type { RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import type pg from "pg";
import { ImpactIndex, type ItemRow, type RelationshipRow, type Walk } from "./impact-index.js";

/** Position in the event store's commit order (see @rdm/relay README). */
interface CommitPosition {
  transactionId: string;
  globalPosition: number;
}

/** Stream type of configuration items (their ids are `ci-<uuid>`). */
const CI_STREAM_TYPE = "ci";

const ITEMS = "SELECT ci_id, name, type, owner, item FROM configuration_items";

/** Above this many changed items, loading everything again is cheaper than patching. */
const FULL_RELOAD_THRESHOLD = 2_000;

/**
 * The relationship graph and each item's summary and encoded row, held in memory for impact
 * analysis, so a walk over the whole CMDB, root included, is a walk over maps instead of a
 * database round trip per level.
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
  private readonly index = new ImpactIndex();
  private checkpoint: CommitPosition | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly pool: pg.Pool) {}

  /** Brings the graph up to every commit visible now. Calls run one after another. */
  refresh(): Promise<void> {
    const run = this.queue.then(() => this.catchUp());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The encoded ConfigurationItem of `ciId` as of the last refresh(); undefined if it has no row. */
  item(ciId: string): Uint8Array | undefined {
    return this.index.item(ciId);
  }

  /** See ImpactIndex.walk: call it after refresh(), and read the walk before walking again. */
  walk(rootId: string, types: RelationshipType[], maxDepth: number): Walk {
    return this.index.walk(rootId, types, maxDepth);
  }

  private async catchUp(): Promise<void> {
    if (!this.checkpoint) await this.loadAll();
    const after = this.checkpoint as CommitPosition;
    const { rows } = await this.pool.query<{
      stream_id: string;
      transaction_id: string;
      global_position: string;
      final: boolean;
    }>({
      // Named: run on every AnalyzeImpact call, so parsed and planned once per connection.
      name: "rdm_impact_changes",
      text: `SELECT stream_id, transaction_id::text AS transaction_id, global_position,
                    transaction_id < pg_snapshot_xmin(pg_current_snapshot()) AS final
             FROM events e
             WHERE (e.transaction_id, e.global_position) > ($1::xid8, $2::bigint) AND e.stream_type = $3
             ORDER BY e.transaction_id, e.global_position`,
      values: [after.transactionId, after.globalPosition, CI_STREAM_TYPE],
    });
    if (rows.length === 0) return;
    const changed = [...new Set(rows.map((r) => r.stream_id))];
    // A newer snapshot than the rows above: it holds all of them.
    if (changed.length > FULL_RELOAD_THRESHOLD) return this.loadAll();
    const [items, relationships] = await Promise.all([
      this.pool.query<ItemRow>(`${ITEMS} WHERE ci_id = ANY($1)`, [changed]),
      this.pool.query<RelationshipRow>(
        "SELECT source_ci_id, type, target_ci_id FROM ci_relationships WHERE source_ci_id = ANY($1)",
        [changed],
      ),
    ]);
    this.index.addItems(items.rows);
    this.index.replaceOutgoing(changed, relationships.rows);
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
      const items = await client.query<ItemRow>(ITEMS);
      const relationships = await client.query<RelationshipRow>(
        "SELECT source_ci_id, type, target_ci_id FROM ci_relationships",
      );
      await client.query("COMMIT");
      this.index.clear();
      this.index.addItems(items.rows);
      this.index.replaceOutgoing([], relationships.rows);
      this.checkpoint = { transactionId: horizon.rows[0]?.xmin as string, globalPosition: 0 };
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}
