import { createHash } from "node:crypto";
import { type DescMessage, type JsonValue, type MessageShape, toJson } from "@bufbuild/protobuf";

/** JSON with every object's keys sorted: map entries arrive in any order (Go clients shuffle them). */
function canonical(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k] as JsonValue)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/**
 * What a command's request-id idempotency record compares: the caller (the token's subject), the
 * request message's type (one per RPC) and its content in a canonical form. A retry is the same
 * caller sending the same request again, so another caller reusing the id is refused, not handed
 * the first caller's answer with its own command never run. Two RPCs whose requests happen to
 * look alike (say `{request_id, id}`) still differ; a retry whose map entries come in another
 * order is still the same request.
 */
export const requestFingerprint = <S extends DescMessage>(
  schema: S,
  request: MessageShape<S>,
  caller: string,
): string =>
  createHash("sha256")
    .update(caller)
    .update("\0")
    .update(schema.typeName)
    .update("\0")
    .update(canonical(toJson(schema, request)))
    .digest("hex");
