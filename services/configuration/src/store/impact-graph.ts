import type { RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import type pg from "pg";
import { ImpactIndex, type ItemRow, type RelationshipRow, type Walk } from "./impact-index.js";

/** Stream type of configuration items (their ids are `ci-<uuid>`). */
const CI_STREAM_TYPE = "ci";

const ITEMS = "SELECT ci_id, name, type, owner, item FROM configuration_items";
/** The last rebuild of the tables recorded (0: none). */
const LAST_REBUILD = "(SELECT coalesce(max(rebuild), 0) FROM query_table_rebuilds)::text";

/** Above this many changed items, loading everything again is cheaper than patching. */
const FULL_RELOAD_THRESHOLD = 2_000;

/**
 * The relationship graph and each item's summary and encoded row, held in memory for impact
 * analysis, so a walk over the whole CMDB, root included, is a walk over maps instead of a
 * database round trip per level.
 *
 * It follows the event store: `refresh()` reads which CI streams got events from its horizon
 * (commit order) and reloads those items' rows and outgoing relationships from the read model
 * (written in the events' transaction; a relationship lives on its source's stream). It sees
 * every commit visible when it is called, so a caller reads its own writes, including other
 * replicas' writes. The horizon is the last snapshot's xmin (every transaction below it has ended,
 * see @rdm/relay), so events above it are read again next time: reloading current rows is
 * idempotent.
 *
 * A rebuild of the tables (rebuild-tables) writes rows without events, which may differ from the
 * rows loaded (restoring a lost one); it records itself in the same transaction (markRebuilt),
 * and a refresh that sees a rebuild newer than the graph's load loads everything again.
 */
export class ImpactGraph {
  private readonly index = new ImpactIndex();
  /** A commit horizon (a snapshot's xmin): the changes of every transaction below it are in. */
  private horizon: string | undefined;
  /** The last rebuild of the tables recorded when everything was loaded (see LAST_REBUILD). */
  private lastRebuild: string | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** When the last refresh began (ms since the epoch): every write committed before it is in. */
  private caughtUpTo = Number.NEGATIVE_INFINITY;
  /** A refresh asked for and not yet begun: it will see every commit made before it begins. */
  private next: Promise<void> | undefined;
  /** When refreshSoon() last started a refresh (ms since the epoch). */
  private askedSoon = Number.NEGATIVE_INFINITY;

  constructor(private readonly pool: pg.Pool) {}

  /** Every write committed before this time (ms since the epoch) is in the graph. */
  get asOf(): number {
    return this.caughtUpTo;
  }

  /**
   * Brings the graph up to every commit visible now. Refreshes run one after another; callers
   * that come while one waits to begin share it (it begins after each of them came), so calls
   * arriving together while one runs make one round trip after it, not one each.
   */
  refresh(): Promise<void> {
    if (this.next) return this.next;
    const run: Promise<void> = this.queue.then(() => {
      this.next = undefined;
      return this.catchUp();
    });
    this.next = run;
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * A refresh in the background if the graph is `olderThanMs` old or more, unless one is already
   * waiting to begin (it will see every commit this one would). A stream of calls so makes a
   * round trip every `olderThanMs`, not one a call. Its failure (a lost database) is left to the
   * next refresh() awaited.
   */
  refreshSoon(olderThanMs: number): void {
    const now = Date.now();
    // From the last one asked for too: one still running has not moved caughtUpTo yet.
    if (this.next || now - Math.max(this.caughtUpTo, this.askedSoon) < olderThanMs) return;
    this.askedSoon = now;
    this.refresh().catch(() => undefined);
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
    if (!this.horizon) await this.loadAll();
    // Before the query: its snapshot, taken later, sees every commit made before this time.
    const began = Date.now();
    const after = this.horizon as string;
    const { rows } = await this.pool.query<{ horizon: string; changed: string[]; last_rebuild: string }>({
      // Named: run on every AnalyzeImpact call, so parsed and planned once per connection.
      name: "rdm_impact_changes",
      text: `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon,
                    ARRAY(SELECT DISTINCT stream_id FROM events e
                          WHERE e.transaction_id >= $1::xid8 AND e.stream_type = $2) AS changed,
                    ${LAST_REBUILD} AS last_rebuild`,
      values: [after, CI_STREAM_TYPE],
    });
    const { horizon, changed, last_rebuild: lastRebuild } = rows[0] as (typeof rows)[number];
    // Rows a rebuild wrote (no events say which), or so many changed ones: everything again, from
    // a newer snapshot than the query's, which holds all of the changes.
    if (lastRebuild !== this.lastRebuild || changed.length > FULL_RELOAD_THRESHOLD) {
      await this.loadAll();
      this.caughtUpTo = began;
      return;
    }
    if (changed.length > 0) {
      const [items, relationships] = await Promise.all([
        this.pool.query<ItemRow>(`${ITEMS} WHERE ci_id = ANY($1)`, [changed]),
        this.pool.query<RelationshipRow>(
          "SELECT source_ci_id, type, target_ci_id FROM ci_relationships WHERE source_ci_id = ANY($1)",
          [changed],
        ),
      ]);
      this.index.addItems(items.rows);
      this.index.replaceOutgoing(changed, relationships.rows);
    }
    // Every transaction below the snapshot's horizon had ended, its CI changes read now or
    // before: the next call reads from there. (Moving only past CI events, every call read again
    // every other event, artifacts' and baselines', committed since the last CI change.)
    if (BigInt(horizon) > BigInt(after)) this.horizon = horizon;
    this.caughtUpTo = began;
  }

  /** Everything from one snapshot; the horizon is its xmin: every older transaction is in it. */
  private async loadAll(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      const marks = await client.query<{ xmin: string; last_rebuild: string }>(
        `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin, ${LAST_REBUILD} AS last_rebuild`,
      );
      const items = await client.query<ItemRow>(ITEMS);
      const relationships = await client.query<RelationshipRow>(
        "SELECT source_ci_id, type, target_ci_id FROM ci_relationships",
      );
      await client.query("COMMIT");
      this.index.clear();
      this.index.addItems(items.rows);
      this.index.replaceOutgoing([], relationships.rows);
      this.horizon = marks.rows[0]?.xmin as string;
      this.lastRebuild = marks.rows[0]?.last_rebuild as string;
    } catch (error) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
  }
}

/** Records a rebuild of the tables, in its transaction: every graph then loads them again. */
export async function markRebuilt(client: pg.PoolClient): Promise<void> {
  await client.query("INSERT INTO query_table_rebuilds DEFAULT VALUES");
}
