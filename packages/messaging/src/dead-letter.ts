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
} as const;

const MAX_ERROR_LENGTH = 4_000;

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
  return { key: message.key, value: message.value, headers };
}
