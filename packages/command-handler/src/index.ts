export type {
  Aggregate,
  AnswerSource,
  ClientCommand,
  Command,
  CommandHandlerOptions,
  CommandOrigin,
  DecisionContext,
  Outcome,
  Projected,
  Queryable,
  RetryPolicy,
  Snapshot,
  SnapshotReader,
} from "./command.js";
export { reactionOrigin } from "./command.js";
export { CommandHandler } from "./command-handler.js";
export { isDeadlock, isUniqueViolation } from "./conflicts.js";
export { type DomainEvent, type EventCodec, eventCodec } from "./event-codec.js";
export { DEFAULT_MAX_EVENT_BYTES, refuseOversizedEvents } from "./event-size.js";
export {
  entityRows,
  type FinalState,
  type QueryTables,
  rebuildQueryTables,
  type StreamRows,
  streamRows,
  streamRowsInBatches,
} from "./query-tables.js";
export { answerOf } from "./recorded-answer.js";
export {
  isRuleViolation,
  namingTheMissing,
  type RuleCondition,
  RuleViolation,
  type RuleViolationCode,
  type RuleViolationOptions,
} from "./rule-violation.js";
