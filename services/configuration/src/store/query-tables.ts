import type { ConfigurationItem } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import type { ArtifactEvent } from "../domain/artifact.js";
import * as artifactAggregate from "../domain/artifact.js";
import type { BaselineEvent } from "../domain/baseline.js";
import * as baselineAggregate from "../domain/baseline.js";
import type { ConfigurationItemEvent } from "../domain/configuration-item.js";
import * as itemAggregate from "../domain/configuration-item.js";
import { type Queryable, saveArtifact, saveBaseline, saveConfigurationItem } from "./read-model.js";

/**
 * Writes the row of a CI's stream from its history, as every command on it does; returns the
 * item (undefined: not a CI's stream). Its relationships are written apart: a command writes
 * those its events add or remove.
 */
export async function saveItemRow(
  q: Queryable,
  history: ConfigurationItemEvent[],
): Promise<ConfigurationItem | undefined> {
  const { item } = itemAggregate.fold(history);
  if (item) await saveConfigurationItem(q, item);
  return item;
}

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
