export { kafkaMockLauncherPath, type MockKafkaOptions, type StartedMockKafka, startMockKafka } from "./kafka.js";
export { howItEnded } from "./launcher.js";
export { freePort } from "./ports.js";
export {
  databaseUrl,
  type EmbeddedPostgresOptions,
  ensureDatabase,
  type StartedPostgres,
  startEmbeddedPostgres,
  startEmbeddedPostgresProcess,
} from "./postgres.js";
