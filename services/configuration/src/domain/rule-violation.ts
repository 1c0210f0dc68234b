import { RuleViolation, type RuleViolationCode } from "@rdm/command-handler";

/**
 * A configuration-service refusal, as the one RuleViolation: `subject` is what the rule is about
 * (the missing resource's id for NOT_FOUND, the field for INVALID_ARGUMENT); the resource type of
 * a NOT_FOUND is the rule's first part ("ci", "artifact").
 */
export const configurationRuleViolation = (code: RuleViolationCode, rule: string, message: string, subject = "") =>
  new RuleViolation(code, rule, message, { subject });
