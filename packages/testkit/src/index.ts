export { authorizedChangeEvents } from "./change-events.js";
export { repeatWhilePending, runBuiltCommand } from "./commands.js";
export { createTestDatabase, type TestDatabase } from "./database.js";
export { type DeciderWhen, deciderSpec, type Refusal, type SpecifiedDecider } from "./decider-spec.js";
export { dockerAvailable } from "./docker.js";
export { testConsumerTimings, testKafkaBrokers, testTopicPrefix, untilGroupCaughtUp } from "./kafka.js";
export { type ProjectionWhen, projectionSpec, type SpecifiedProjection } from "./projection-spec.js";
export { type PublishedEvent, type PublishedEventOptions, PublishedStreams } from "./published-event.js";
export {
  BACKEND_ENV,
  type Backend,
  DATABASE_URL_ENV,
  KAFKA_BROKERS_ENV,
  startTestServers,
  type TestServers,
} from "./servers.js";
export { uniqueId, type WaitForOptions, waitFor } from "./wait.js";
