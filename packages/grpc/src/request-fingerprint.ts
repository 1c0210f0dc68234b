import { createHash } from "node:crypto";
import { type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";

/**
 * What a command's request-id idempotency record compares: the request message's type (one per
 * RPC) and its bytes. Two RPCs whose requests happen to encode alike (say `{request_id, id}`)
 * still differ, so a request id reused for another command is refused, not answered with the
 * first command's response.
 */
export const requestFingerprint = <S extends DescMessage>(schema: S, request: MessageShape<S>): string =>
  createHash("sha256").update(schema.typeName).update("\0").update(toBinary(schema, request)).digest("hex");
