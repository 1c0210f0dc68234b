import { RuleViolation } from "./rule-violation.js";

/**
 * Each event travels as one Kafka record, which a broker refuses above the topic's
 * max.message.bytes (1 MiB by default) on every retry: half of that, with room for the headers.
 */
export const DEFAULT_MAX_EVENT_BYTES = 512 * 1024;

/**
 * Refuses events of more than `maxBytes` (INVALID_ARGUMENT, `event.too_large`), before anything is
 * appended. The command handler applies it to every append; a caller that appends encoded events
 * itself (a bulk import) applies it with the handler's `maxEventBytes`.
 */
export function refuseOversizedEvents(encoded: readonly { type: string; data: Uint8Array }[], maxBytes: number): void {
  const oversized = encoded.find((event) => event.data.byteLength > maxBytes);
  if (!oversized) return;
  throw new RuleViolation(
    "INVALID_ARGUMENT",
    "event.too_large",
    `the ${oversized.type} this request would record is ${oversized.data.byteLength} bytes, more than ` +
      `the ${maxBytes} an event may have (it must fit one Kafka message): send fewer or shorter items`,
  );
}
