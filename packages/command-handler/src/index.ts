export {
  type Aggregate,
  type ClientCommand,
  type Command,
  CommandHandler,
  type CommandHandlerOptions,
  type CommandOrigin,
  type DecisionContext,
  isUniqueViolation,
  type Outcome,
  type Projected,
  type Queryable,
  type RetryPolicy,
  type Snapshot,
  type SnapshotReader,
} from "./command-handler.js";
export { type DomainEvent, type EventCodec, eventCodec } from "./event-codec.js";
export {
  isRuleViolation,
  type RuleCondition,
  RuleViolation,
  type RuleViolationCode,
  type RuleViolationOptions,
} from "./rule-violation.js";
