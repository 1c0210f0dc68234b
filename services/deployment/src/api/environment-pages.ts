import { create } from "@bufbuild/protobuf";
import {
  type ListEnvironmentsRequest,
  ListEnvironmentsResponseSchema,
} from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import { decodePageToken, encodePageToken, pageTokenRefused, pageTokenScope, rowsFitting } from "@rdm/runtime";
import type pg from "pg";
import { type EnvironmentKey, listEnvironments } from "../store/tables.js";

const RANK = /^[0-9]{1,9}$/;
const ENVIRONMENT_NAME = /^[a-z][a-z0-9-]{0,62}$/;

/** The environment a ListEnvironments page token (made with `scope`) says the previous page ended with. */
function environmentAfter(token: string, scope: string): EnvironmentKey {
  const after = decodePageToken(
    token,
    scope,
    (rank) => RANK.test(rank),
    (name) => ENVIRONMENT_NAME.test(name),
  );
  if (typeof after === "string") throw pageTokenRefused(after);
  return { rank: Number(after[0]), name: after[1] };
}

/**
 * A ListEnvironments answer: every environment when page_size is 0, else a page of at most
 * page_size, and fewer when they would not fit one answer.
 */
export async function environmentsPage(pool: pg.Pool, request: ListEnvironmentsRequest) {
  const scope = pageTokenScope("deployment.ListEnvironments", request);
  const after = request.pageToken ? environmentAfter(request.pageToken, scope) : undefined;
  const limit = request.pageSize || undefined;
  const found = await listEnvironments(pool, { after, limit: limit && limit + 1 });
  const count = limit ? rowsFitting(found.slice(0, limit).map((row) => row.bytes)) : found.length;
  const page = found.slice(0, count).map((row) => row.environment);
  const last = page.at(-1);
  return create(ListEnvironmentsResponseSchema, {
    environments: page,
    nextPageToken: found.length > count && last ? encodePageToken(scope, String(last.promotionRank), last.name) : "",
  });
}
