export * from "./cloudevents.js";
export {
  type ChunkHandler,
  type ConsumerOptions,
  type EventHandler,
  type MessageInfo,
  PermanentError,
  type RunningConsumer,
  startConsumer,
} from "./consumer.js";
export { type DeadLetterReason, DLQ_HEADERS, deadLetterMessage } from "./dead-letter.js";
export {
  checkEvent,
  checkEventIdentity,
  checkEventInput,
  checkEventStream,
  decodeEvent,
  type EventIdentity,
  streamOfBody,
} from "./event-identity.js";
export { untilDatabaseAnswers } from "./failures.js";
export { CONSUMER_TABLES_SQL, ensureConsumerTables, HANDLED_EVENTS_TABLE } from "./handled-events.js";
export { createKafka, createProducer, type KafkaOptions, publishEvents } from "./kafka.js";
export {
  CHANGE_EVENTS_TOPIC,
  CONFIGURATION_EVENTS_TOPIC,
  DEPLOYMENT_EVENTS_TOPIC,
  EVENT_SOURCES,
  type EventSource,
  eventsTopic,
  RELEASE_EVENTS_TOPIC,
} from "./topics.js";
