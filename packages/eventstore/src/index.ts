export type { GroupCommitOptions, Projection, ProjectionItem } from "./append-batch.js";
export type { CommandResult } from "./command-results.js";
export {
  DuplicateRequest,
  type ExpectedVersion,
  isConflict,
  isDataException,
  isTransactionCollision,
  WrongExpectedVersion,
} from "./errors.js";
export {
  type AppendOptions,
  type AppendResult,
  type BulkAppendOptions,
  type CommitOrderPosition,
  type EventMetadata,
  EventStore,
  type EventStoreOptions,
  type NewEvent,
  type RecordedEvent,
} from "./event-store.js";
export {
  type Migration,
  MigrationConflict,
  type MigrationSet,
  pendingMigrations,
  runMigrations,
} from "./migrations.js";
export { EVENTS_CHANNEL, eventStoreMigrations } from "./schema.js";
export { commit, withTransaction } from "./transaction.js";
export { isDatabaseUnavailable } from "./unavailable.js";
export { byteaArray, lastPerKey, textArrayOfJson, unnestColumns } from "./unnest.js";
