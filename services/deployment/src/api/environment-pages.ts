import { create } from "@bufbuild/protobuf";
import { InvalidArgument } from "@rdm/grpc";
import {
  type ListEnvironmentsRequest,
  ListEnvironmentsResponseSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { decodePageToken, encodePageToken } from "@rdm/runtime";
import type pg from "pg";
import { type EnvironmentKey, listEnvironments } from "../store/tables.js";

/** The most environment bytes (definitions and baselines) one page holds: under a gRPC client's 4 MiB. */
const MAX_PAGE_BYTES = 3 * 1024 * 1024;

const RANK = /^[0-9]{1,9}$/;
const ENVIRONMENT_NAME = /^[a-z][a-z0-9-]{0,62}$/;

/** The environment a ListEnvironments page token says the previous page ended with. */
function environmentAfter(token: string): EnvironmentKey {
  const after = decodePageToken(
    token,
    (rank) => RANK.test(rank),
    (name) => ENVIRONMENT_NAME.test(name),
  );
  if (!after) {
    throw new InvalidArgument([
      { field: "page_token", description: "not a page token from ListEnvironments", reason: "page_token" },
    ]);
  }
  return { rank: Number(after[0]), name: after[1] };
}

/**
 * A ListEnvironments answer: every environment when page_size is 0, else a page of at most
 * page_size, and fewer when they would not fit one answer.
 */
export async function environmentsPage(pool: pg.Pool, request: ListEnvironmentsRequest) {
  const after = request.pageToken ? environmentAfter(request.pageToken) : undefined;
  const limit = request.pageSize || undefined;
  const found = await listEnvironments(pool, { after, limit: limit && limit + 1 });
  let count = found.length;
  if (limit) {
    let bytes = 0;
    for (count = 0; count < Math.min(limit, found.length); count++) {
      bytes += found[count]?.bytes ?? 0;
      if (count > 0 && bytes > MAX_PAGE_BYTES) break;
    }
  }
  const page = found.slice(0, count).map((row) => row.environment);
  const last = page.at(-1);
  return create(ListEnvironmentsResponseSchema, {
    environments: page,
    nextPageToken: found.length > count && last ? encodePageToken(String(last.promotionRank), last.name) : "",
  });
}
