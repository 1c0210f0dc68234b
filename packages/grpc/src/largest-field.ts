import { create, type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { InvalidArgument } from "./errors.js";
import { isRuleViolationLike } from "./rule-violation.js";

/**
 * A field at least this large (half of what an event may hold by default, 512 KiB) is what makes
 * an event too large; a smaller request's event is large for what the service adds (a plan's
 * steps over many targets), and no field of the request is named.
 */
const LARGE_FIELD_BYTES = 256 * 1024;

/**
 * Runs a unary call's handler; a refusal of what the request would record as too large
 * (`event.too_large`, from the command handler, which sees events and not the request) is told
 * with the request's largest field named, when that field is large: the one to shorten.
 */
export async function namingTheLargestField<T>(
  schema: DescMessage,
  request: MessageShape<DescMessage>,
  handle: () => Promise<T>,
): Promise<T> {
  try {
    return await handle();
  } catch (error) {
    if (!isRuleViolationLike(error) || error.code !== "INVALID_ARGUMENT" || error.rule !== "event.too_large")
      throw error;
    const field = largestField(schema, request, LARGE_FIELD_BYTES);
    throw new InvalidArgument(
      error.conditions.map((c) => ({ field: c.subject || field, description: c.description, reason: c.rule })),
    );
  }
}

/**
 * The proto name of the top-level field that takes the most bytes in the request's encoding, of
 * at least `atLeast` bytes ("" when none is as large).
 */
export function largestField(schema: DescMessage, request: MessageShape<DescMessage>, atLeast = 1): string {
  let largest = { name: "", bytes: atLeast - 1 };
  for (const member of schema.members) {
    const value = (request as Record<string, unknown>)[member.localName];
    const alone = create(schema, { [member.localName]: value } as never);
    const bytes = toBinary(schema, alone).byteLength;
    if (bytes <= largest.bytes) continue;
    // A oneof is named by the field it holds.
    const set =
      member.kind === "oneof" ? member.fields.find((f) => f.localName === (value as { case?: string }).case) : member;
    largest = { name: set?.name ?? member.name, bytes };
  }
  return largest.name;
}
