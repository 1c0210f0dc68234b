import { InvalidArgument } from "@rdm/grpc";
import { decodePageToken, type PageTokenFault } from "./page-token.js";

/** INVALID_ARGUMENT on a gRPC list's page_token, saying why it is refused. */
export const pageTokenRefused = (fault: PageTokenFault) =>
  new InvalidArgument([{ field: "page_token", description: `page_token ${fault}`, reason: "page_token" }]);

/**
 * Where a gRPC list continues: undefined without a token (its first page), else the [sortKey, id]
 * its token holds; a token that is not valid, or of another list or filters, is INVALID_ARGUMENT.
 */
export function pageCursor(
  token: string,
  scope: string,
  isSortKey: (key: string) => boolean,
  isId: (id: string) => boolean,
): [string, string] | undefined {
  if (!token) return undefined;
  const cursor = decodePageToken(token, scope, isSortKey, isId);
  if (typeof cursor === "string") throw pageTokenRefused(cursor);
  return cursor;
}
