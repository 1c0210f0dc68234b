export type {
  Aggregate,
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
export { CommandHandler, isUniqueViolation } from "./command-handler.js";
export { type DomainEvent, type EventCodec, eventCodec } from "./event-codec.js";
export {
  isRuleViolation,
  type RuleCondition,
  RuleViolation,
  type RuleViolationCode,
  type RuleViolationOptions,
} from "./rule-violation.js";
