import type { RelationshipType } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";

/** A relationship as stored: impact travels from target to source. */
export interface Edge {
  sourceCiId: string;
  type: RelationshipType;
  targetCiId: string;
}

export interface Reached {
  ciId: string;
  depth: number;
  /** Root first, this CI last. */
  path: string[];
  pathRelationships: RelationshipType[];
}

export interface ImpactOptions {
  /** 0 = unlimited. */
  maxDepth: number;
}

/**
 * Breadth-first search against the relationship arrows from `rootId`, one batched lookup per
 * level: every CI is reached once, at its shortest depth, so cycles end the walk instead of
 * looping and the cost is O(reached CIs + their incoming edges).
 */
export async function transitiveDependents(
  rootId: string,
  incomingEdges: (targetIds: string[]) => Promise<Edge[]>,
  options: ImpactOptions,
): Promise<Reached[]> {
  const reached = new Map<string, Reached>([
    [rootId, { ciId: rootId, depth: 0, path: [rootId], pathRelationships: [] }],
  ]);
  let frontier = [rootId];
  let depth = 0;
  while (frontier.length > 0 && (options.maxDepth === 0 || depth < options.maxDepth)) {
    depth += 1;
    const next: string[] = [];
    const edges = await incomingEdges(frontier);
    // Deterministic paths: parents and children in a stable order.
    edges.sort((a, b) => a.targetCiId.localeCompare(b.targetCiId) || a.sourceCiId.localeCompare(b.sourceCiId));
    for (const edge of edges) {
      if (reached.has(edge.sourceCiId)) continue;
      const parent = reached.get(edge.targetCiId);
      if (!parent) continue;
      reached.set(edge.sourceCiId, {
        ciId: edge.sourceCiId,
        depth,
        path: [...parent.path, edge.sourceCiId],
        pathRelationships: [...parent.pathRelationships, edge.type],
      });
      next.push(edge.sourceCiId);
    }
    frontier = next;
  }
  reached.delete(rootId);
  return [...reached.values()];
}
