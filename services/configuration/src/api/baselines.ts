import { create } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { EventStore } from "@rdm/eventstore";
import { NotFound } from "@rdm/grpc";
import type { Baseline } from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { GetBaselineResponseSchema } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { decodePageToken, encodePageToken, pageTokenRefused, pageTokenScope } from "@rdm/runtime";
import * as baselineAggregate from "../domain/baseline.js";
import { type BaselineEvent, baselineStreamId } from "../domain/baseline.js";
import { checkPackageConsistency } from "../domain/consistency.js";
import { findArtifacts, findBaseline } from "../store/read-model.js";
import { readHistory } from "../store/streams.js";
import { type ConfigurationApiDeps, type ConfigurationHandlers, upTo } from "./configuration-rpc.js";

/** Environment baselines and package consistency against them. */
export function baselineHandlers(
  deps: ConfigurationApiDeps,
): Pick<ConfigurationHandlers, "checkPackageConsistency" | "getBaseline"> {
  const { store, pool } = deps;
  return {
    async checkPackageConsistency(request) {
      const artifacts = await findArtifacts(pool, request.artifactIds);
      const found = new Set(artifacts.map((a) => a.artifactId));
      const missing = request.artifactIds.filter((id) => !found.has(id));
      if (missing.length > 0) throw new NotFound("artifact", missing.join(", "));
      const baseline = request.environment ? await findBaseline(pool, request.environment) : undefined;
      // Keep the caller's order, so problems come out in a stable, meaningful order.
      const ordered = request.artifactIds.map((id) => artifacts.find((a) => a.artifactId === id)).filter((a) => !!a);
      return checkPackageConsistency(ordered, baseline?.entries ?? []);
    },

    async getBaseline(request) {
      const { environment } = request;
      const scope = pageTokenScope("configuration.GetBaseline", request);
      const from: { version?: bigint; offset: number } = request.pageToken
        ? pagePosition(request.pageToken, scope, environment)
        : { offset: 0 };
      // The current baseline is the read model's row (written with each of its events), also for
      // the later pages while it has not moved; a past one, as of a time or the version paging
      // started from, is folded from the stream.
      const current = request.asOf && from.version === undefined ? undefined : await findBaseline(pool, environment);
      const baseline =
        current && (from.version === undefined || current.version === from.version)
          ? current
          : await foldedBaseline(store, environment, from.version === undefined ? { asOf: request.asOf } : from);
      if (!baseline) throw new NotFound("baseline", environment);
      if (from.version !== undefined && baseline.version !== from.version) throw pageTokenRefused("is not valid");
      const { rows, next } = pageOf(baseline, from.offset, request.pageSize);
      return create(GetBaselineResponseSchema, {
        baseline: rows,
        nextPageToken: next === undefined ? "" : encodePageToken(scope, `${baseline.version}.${next}`, environment),
      });
    },
  };
}

async function foldedBaseline(
  store: EventStore,
  environment: string,
  upToThe: { asOf?: Timestamp | undefined; version?: bigint },
): Promise<Baseline | undefined> {
  const history = await readHistory<BaselineEvent>(store, baselineStreamId(environment));
  const { version } = upToThe;
  const events =
    version === undefined
      ? upTo(history, upToThe.asOf)
      : history.filter((event, i) => (event.metadata?.streamVersion ?? BigInt(i + 1)) <= version);
  return baselineAggregate.fold(events).baseline;
}

/**
 * Where a page token (made with `scope`) continues: the baseline's version and the row (of
 * entries, then last known good).
 */
function pagePosition(token: string, scope: string, environment: string): { version: bigint; offset: number } {
  const position = decodePageToken(
    token,
    scope,
    (key) => /^\d{1,19}\.\d{1,9}$/.test(key),
    (id) => id === environment,
  );
  if (typeof position === "string") throw pageTokenRefused(position);
  const [version, offset] = position[0].split(".") as [string, string];
  return { version: BigInt(version), offset: Number(offset) };
}

/**
 * Rows [offset, offset + size) of the baseline's entries followed by its last known good (size 0:
 * to the end), its other fields as they are; and where the next page starts, if anything is left.
 */
function pageOf(baseline: Baseline, offset: number, size: number): { rows: Baseline; next: number | undefined } {
  const current = baseline.entries.length;
  const total = current + baseline.lastKnownGood.length;
  const end = size > 0 ? Math.min(offset + size, total) : total;
  return {
    rows: {
      ...baseline,
      entries: baseline.entries.slice(Math.min(offset, current), Math.min(end, current)),
      lastKnownGood: baseline.lastKnownGood.slice(Math.max(0, offset - current), Math.max(0, end - current)),
    },
    next: end < total ? end : undefined,
  };
}
