import { type Projected, type QueryTables, streamRows, streamRowsInBatches } from "@rdm/command-handler";
import type { Projection } from "@rdm/eventstore";
import type { ArtifactEvent } from "../domain/artifact.js";
import * as artifactAggregate from "../domain/artifact.js";
import type { BaselineEvent } from "../domain/baseline.js";
import * as baselineAggregate from "../domain/baseline.js";
import type { ConfigurationItemEvent } from "../domain/configuration-item.js";
import * as itemAggregate from "../domain/configuration-item.js";
import type { ConfigurationEvent } from "./event-codec.js";
import { configurationCodec } from "./event-codec.js";
import { markRebuilt } from "./impact-graph.js";
import {
  deleteRelationships,
  type Queryable,
  saveArtifact,
  saveBaseline,
  saveConfigurationItems,
  saveRelationships,
} from "./read-model.js";
import { historyOf } from "./streams.js";

/**
 * The rows of a group-committed batch of commands on CI streams, one statement a table: each
 * item's row from its history, and the relationships its events add or remove (a relationship
 * lives on its source's stream, and commands on one stream are never in one batch).
 */
export const itemProjection: Projection<Projected<ConfigurationItemEvent[], ConfigurationItemEvent>> = {
  async apply(tx, commands) {
    const events = commands.flatMap(({ outcome }) => outcome.events);
    const changed = (type: string) =>
      events.flatMap((event) => (event.$typeName === type && "relationship" in event && event.relationship) || []);
    await saveConfigurationItems(
      tx,
      commands.flatMap(({ outcome }) => itemAggregate.fold(outcome.after).item ?? []),
    );
    await saveRelationships(tx, changed("rdm.configuration.v1.RelationshipAdded"));
    await deleteRelationships(tx, changed("rdm.configuration.v1.RelationshipRemoved"));
  },
};

/** Writes the row of an artifact's stream from its history; false when it is not an artifact's. */
export async function saveArtifactRow(q: Queryable, history: ArtifactEvent[]): Promise<boolean> {
  const { artifact } = artifactAggregate.fold(history);
  if (artifact) await saveArtifact(q, artifact);
  return artifact !== undefined;
}

/** Writes an environment's baseline from its stream's history; false when it records no outcome. */
export async function saveBaselineRow(q: Queryable, history: BaselineEvent[]): Promise<boolean> {
  const { baseline } = baselineAggregate.fold(history);
  if (baseline) await saveBaseline(q, baseline);
  return baseline !== undefined;
}

/**
 * The configuration service's query tables, as `rebuildQueryTables` (@rdm/command-handler) writes
 * them again from its streams:
 * - configuration_items and ci_relationships from the "ci" streams (a relationship lives on its
 *   source's stream);
 * - dml_artifacts from the "artifact" streams;
 * - baselines from the "baseline" streams: the consumer of rdm.deployment.events.v1 records each
 *   outcome as an event on the environment's stream before it writes the row, so the row is this
 *   store's, not the topic's.
 * Not rebuilt: the event store's and the relay's tables; rdm_handled_events, which deployment
 * events the consumer took (the topic's bookkeeping, held by no stream here); query_table_rebuilds,
 * a row per rebuild (markRebuilt), by which AnalyzeImpact's graph, following the events, learns
 * that rows changed without any.
 *
 * The rebuild locks the tables one after the other in the order listed, which is the order every
 * writer takes them in: a group commit projects its commands in stream id order ("artifact-",
 * "baseline-", "ci-"), and an item's row goes before its relationships. So no writer holds one
 * while it waits for one the rebuild holds: they cannot deadlock.
 */
export const configurationQueryTables: QueryTables<ConfigurationEvent> = {
  tables: ["dml_artifacts", "baselines", "configuration_items", "ci_relationships"],
  codec: configurationCodec,
  streams: {
    ci: streamRowsInBatches(historyOf<ConfigurationItemEvent>(), async (client, streams) => {
      const items = streams.flatMap(({ state }) => itemAggregate.fold(state).item ?? []);
      await saveConfigurationItems(client, items);
      // All the relationships the CIs have, where a command writes only those its events change.
      await saveRelationships(
        client,
        items.flatMap((item) => item.relationships),
      );
      return items.length;
    }),
    artifact: streamRows(historyOf<ArtifactEvent>(), saveArtifactRow),
    baseline: streamRows(historyOf<BaselineEvent>(), saveBaselineRow),
  },
  rebuilt: markRebuilt,
};
