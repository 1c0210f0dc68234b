import type { IHeaders, KafkaMessage, Message } from "kafkajs";

/** Why a message was dead-lettered. */
export type DeadLetterReason =
  /** Headers or value could not be read as a CloudEvent. */
  | "malformed"
  /** The handler said no retry can help (PermanentError), e.g. an undecodable protobuf. */
  | "permanent"
  /** The handler kept failing for maxAttempts attempts. */
  | "attempts_exhausted";

export const DLQ_HEADERS = {
  reason: "rdm_dlq_reason",
  error: "rdm_dlq_error",
  consumerGroup: "rdm_dlq_consumer_group",
  originalTopic: "rdm_dlq_original_topic",
  originalPartition: "rdm_dlq_original_partition",
  originalOffset: "rdm_dlq_original_offset",
  attempts: "rdm_dlq_attempts",
  /** Set when the copy leaves the value out (too large to copy): its size in bytes. */
  valueOmitted: "rdm_dlq_value_omitted_bytes",
} as const;

const MAX_ERROR_LENGTH = 4_000;

/**
 * The most bytes of key, value and headers a dead-letter copy carries: under a broker's default
 * message.max.bytes (1 MiB) with room for the record's framing. A message near an event topic's
 * own limit plus the dead-letter headers would be refused by the broker every time, and the
 * partition would wait behind it for good.
 */
export const MAX_DEAD_LETTER_BYTES = 1_000_000;

const headerBytes = (headers: IHeaders) =>
  Object.entries(headers).reduce((sum, [name, value]) => {
    const values = Array.isArray(value) ? value : [value];
    return sum + Buffer.byteLength(name) + values.reduce((n, v) => n + (v == null ? 0 : Buffer.byteLength(v)), 0);
  }, 0);

/** The dead-letter copy of a message: original key, value and headers, plus why and where from. */
export function deadLetterMessage(
  message: KafkaMessage,
  details: {
    reason: DeadLetterReason;
    error: Error;
    consumerGroup: string;
    topic: string;
    partition: number;
    attempts: number;
  },
): Message {
  const headers: IHeaders = {
    ...(message.headers ?? {}),
    [DLQ_HEADERS.reason]: details.reason,
    [DLQ_HEADERS.error]: `${details.error.name}: ${details.error.message}`.slice(0, MAX_ERROR_LENGTH),
    [DLQ_HEADERS.consumerGroup]: details.consumerGroup,
    [DLQ_HEADERS.originalTopic]: details.topic,
    [DLQ_HEADERS.originalPartition]: String(details.partition),
    [DLQ_HEADERS.originalOffset]: message.offset,
    [DLQ_HEADERS.attempts]: String(details.attempts),
  };
  const size = (message.key?.length ?? 0) + (message.value?.length ?? 0) + headerBytes(headers);
  // Too large to copy whole: without its value, which stays on the original topic at the offset named.
  if (message.value && size > MAX_DEAD_LETTER_BYTES)
    return {
      key: message.key,
      value: null,
      headers: { ...headers, [DLQ_HEADERS.valueOmitted]: String(message.value.length) },
    };
  return { key: message.key, value: message.value, headers };
}
