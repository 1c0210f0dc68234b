import type { Logger } from "@rdm/observability";
import { Kafka, type LogEntry, logLevel, Partitioners, type Producer, type RecordMetadata } from "kafkajs";
import { type CloudEvent, toKafkaMessage } from "./cloudevents.js";

export interface KafkaOptions {
  brokers: string[];
  clientId: string;
  /** kafkajs' own log lines go here, at the matching pino level. */
  logger: Logger;
}

const pinoLevelToKafkajs: Record<string, logLevel> = {
  silent: logLevel.NOTHING,
  fatal: logLevel.ERROR,
  error: logLevel.ERROR,
  warn: logLevel.WARN,
  info: logLevel.INFO,
  debug: logLevel.DEBUG,
  trace: logLevel.DEBUG,
};

/**
 * Writes a kafkajs log entry to pino at the matching level, except kafkajs' connection's own
 * "Response ..." errors: it logs every error response as an error before handing it to the
 * caller, which retries (a group rebalancing, a leader moving) or logs its own failure. Those
 * are warnings here, so an error line means something failed.
 */
function kafkajsLogLine(logger: Logger) {
  return ({ namespace, level, log }: LogEntry) => {
    const { message, timestamp: _timestamp, logger: _logger, ...extra } = log as LogEntry["log"] & { logger?: unknown };
    const fields = { kafkajs_namespace: namespace, ...extra };
    const handedToCaller = namespace === "Connection" && message.startsWith("Response ");
    if (level === logLevel.ERROR && !handedToCaller) logger.error(fields, message);
    else if (level <= logLevel.WARN) logger.warn(fields, message);
    else if (level === logLevel.INFO) logger.info(fields, message);
    else logger.debug(fields, message);
  };
}

/** A kafkajs client whose log output goes to our pino logger. */
export function createKafka(options: KafkaOptions): Kafka {
  const logger = options.logger.child({ kafka_client_id: options.clientId });
  return new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: pinoLevelToKafkajs[logger.level] ?? logLevel.INFO,
    logCreator: () => kafkajsLogLine(logger),
    // Brokers restart and elect leaders; ride that out for about a minute before giving up
    // (the consumer restarts itself after that, see startConsumer).
    connectionTimeout: 3_000,
    retry: { initialRetryTime: 200, maxRetryTime: 10_000, retries: 10 },
  });
}

/**
 * A producer for CloudEvents. Not idempotent (the librdkafka mock cluster cannot grant
 * producer ids); ordering per partition is kept by allowing one request in flight, so a
 * retried request can never overtake the next one.
 */
export function createProducer(kafka: Kafka): Producer {
  return kafka.producer({
    idempotent: false,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: true,
    // The Java client's murmur2 partitioning, so every client puts a key on the same partition.
    createPartitioner: Partitioners.DefaultPartitioner,
  });
}

/**
 * Publishes events in one request (one record batch per partition), acknowledged by all
 * in-sync replicas (acks -1). Each event's subject is its key, so an aggregate's events
 * stay in order within one partition.
 */
export async function publishEvents(
  producer: Producer,
  topic: string,
  events: CloudEvent[],
): Promise<RecordMetadata[]> {
  if (events.length === 0) return [];
  return producer.send({ topic, acks: -1, messages: events.map(toKafkaMessage) });
}
