import { create } from "@bufbuild/protobuf";
import { isDeadlock } from "@rdm/command-handler";
import { withTransaction } from "@rdm/eventstore";
import {
  Aborted,
  type CallContext,
  GrpcStatus,
  InvalidArgument,
  type RequestValidator,
  RpcError,
  requestFingerprint,
  requestValidator,
  toStatus,
} from "@rdm/grpc";
import { StatusSchema } from "@rdm/proto/gen/google/rpc/status_pb.js";
import {
  ImportConfigurationResponseSchema,
  type ImportItem,
  type ImportItemResult,
  ImportItemResultSchema,
  ImportItemSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import {
  findConfigurationItems,
  registeringRequests,
  retiredAmong,
  saveConfigurationItems,
  saveRelationships,
} from "../store/read-model.js";
import type { ConfigurationApiDeps, ConfigurationHandlers } from "./configuration-rpc.js";
import {
  answeredIds,
  BatchDecider,
  type BatchPlan,
  type BatchReads,
  type ImportEntry,
  referencedRequestIds,
  relatedCiIds,
} from "./import-batch.js";

/** Items of one call in all (documented in the proto): the response holds a result for each. */
export const MAX_ITEMS_PER_CALL = 10_000;
/** Attempts at a batch whose appends meet concurrent writers (each re-reads and re-decides). */
const MAX_ATTEMPTS = 5;
const JITTER_MS = 5;
/**
 * After a call that appended this many events, the tables it filled get fresh planner statistics
 * before it answers (PostgreSQL's advice after a bulk load). Until autovacuum's next round (up to
 * a minute) the planner would otherwise judge the tables by their size before the import: it then
 * read AnalyzeImpact's catch-up by stream type, ~6 ms, instead of ~0.3 ms in commit order.
 */
const ANALYZE_AFTER_APPENDS = 1_000;

/** A batch that met a concurrent writer: rolled back, to be decided again on fresh state. */
class BatchConflict extends Error {
  constructor(override readonly cause: Error) {
    super(`import batch met a concurrent modification: ${cause.message}`);
  }
}

/** ImportConfiguration: messages of CI registrations and relationships, each message one batch. */
export function importHandlers(deps: ConfigurationApiDeps): Pick<ConfigurationHandlers, "importConfiguration"> {
  return {
    async importConfiguration(requests, ctx) {
      const violations = await requestValidator();
      const results: ImportItemResult[] = [];
      let appended = 0;
      for await (const request of requests) {
        if (results.length + request.items.length > MAX_ITEMS_PER_CALL) {
          throw new RpcError(
            GrpcStatus.RESOURCE_EXHAUSTED,
            `an import holds at most ${MAX_ITEMS_PER_CALL} items; the ${results.length} before this message are committed, send the rest in another call`,
          );
        }
        const imported = await importMessage(deps, ctx, request.items, violations);
        appended += imported.appended;
        results.push(...imported.results);
      }
      if (appended >= ANALYZE_AFTER_APPENDS) {
        await deps.pool.query("ANALYZE events, configuration_items, ci_relationships");
      }
      return create(ImportConfigurationResponseSchema, { results });
    },
  };
}

const requestIdOf = (item: ImportItem) => item.item.value?.requestId ?? "";

/**
 * Validates each item on its own, decides and commits the valid ones as one batch; a result per
 * item, and how many events the batch appended.
 */
async function importMessage(
  deps: ConfigurationApiDeps,
  ctx: CallContext,
  items: ImportItem[],
  violations: RequestValidator,
): Promise<{ results: ImportItemResult[]; appended: number }> {
  const results: (ImportItemResult | Error)[] = new Array(items.length);
  const entries: ImportEntry[] = [];
  const places: number[] = [];
  items.forEach((item, i) => {
    const found = violations(ImportItemSchema, item);
    if (found.length > 0) {
      results[i] = new InvalidArgument(found);
      return;
    }
    entries.push({
      requestId: requestIdOf(item),
      requestHash: requestFingerprint(ImportItemSchema, item, ctx.principal.subject),
      item,
    });
    places.push(i);
  });
  const { outcomes, appended } =
    entries.length > 0 ? await runBatch(deps, ctx, entries) : { outcomes: [], appended: 0 };
  outcomes.forEach((outcome, k) => {
    results[places[k] as number] = outcome;
  });
  return {
    results: results.map((outcome, i) =>
      outcome instanceof Error ? refused(requestIdOf(items[i] as ImportItem), outcome) : outcome,
    ),
    appended,
  };
}

/** A refusal as the single-item RPC's status would carry it. */
function refused(requestId: string, error: Error): ImportItemResult {
  const status = toStatus(error);
  if (status.internal) throw error;
  return create(ImportItemResultSchema, {
    requestId,
    error: create(StatusSchema, { code: status.code, message: status.message, details: status.details }),
  });
}

/** Reads, decides and commits a batch, again on fresh state while it meets concurrent writers. */
async function runBatch(
  deps: ConfigurationApiDeps,
  ctx: CallContext,
  entries: ImportEntry[],
): Promise<{ outcomes: (ImportItemResult | Error)[]; appended: number }> {
  for (let attempt = 1; ; attempt++) {
    const plan = new BatchDecider(deps, ctx, await readBatch(deps, entries)).decideAll(entries);
    try {
      await commit(deps, plan);
      return { outcomes: plan.outcomes, appended: plan.appends.length };
    } catch (error) {
      if (!(error instanceof BatchConflict)) throw error;
      if (attempt >= MAX_ATTEMPTS) {
        throw new Aborted(
          `import: concurrent modification, retry the import: ${error.cause.message}`,
          "CONCURRENT_IMPORT",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, Math.random() * JITTER_MS * attempt));
    }
  }
}

/**
 * What the batch decides on: the recorded answers, the CIs its relationships name, and which of
 * the request ids its references name registered a CI.
 */
async function readBatch({ store, pool }: ConfigurationApiDeps, entries: ImportEntry[]): Promise<BatchReads> {
  const answers = await store.getCommandResults(answeredIds(entries));
  const referenced = referencedRequestIds(entries).filter((requestId) => answers.get(requestId)?.streamId);
  return {
    answers,
    items: await findConfigurationItems(pool, relatedCiIds(entries, answers)),
    registrations: await registeringRequests(
      pool,
      referenced.map((requestId) => answers.get(requestId)?.streamId as string),
    ),
  };
}

/**
 * One transaction: every append in one statement, the read model in one statement per table,
 * the answers of no-ops. A refused append (another writer got to a stream first, a twin request
 * committed) rolls it all back: the batch is decided again, as after a deadlock (with a
 * writer of the same sources in another order).
 */
async function commit(deps: ConfigurationApiDeps, plan: BatchPlan): Promise<void> {
  await commitOnce(deps, plan).catch((error: unknown) => {
    throw isDeadlock(error) ? new BatchConflict(error as Error) : error;
  });
}

async function commitOnce({ store, pool }: ConfigurationApiDeps, plan: BatchPlan): Promise<void> {
  await withTransaction(pool, async (tx) => {
    // The relationships' targets were read before this transaction: hold them, and decide again
    // if one was retired since (a retired item gains no relationship).
    const targets = [...new Set(plan.relationships.map((relationship) => relationship.targetCiId))];
    const retired = await retiredAmong(tx, targets);
    if (retired.length) throw new BatchConflict(new Error(`${retired[0]} was retired meanwhile`));
    const appended = await store.appendMany(tx, plan.appends);
    const refusal = appended.find((outcome): outcome is Error => outcome instanceof Error);
    if (refusal) throw new BatchConflict(refusal);
    await saveConfigurationItems(tx, plan.items);
    await saveRelationships(tx, plan.relationships);
    const recorded = await store.recordCommandResults(plan.noOps, { client: tx });
    if (recorded < plan.noOps.length) throw new BatchConflict(new Error("a request id was answered meanwhile"));
  });
}
