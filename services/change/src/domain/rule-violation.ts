import { type RuleCondition, RuleViolation, type RuleViolationCode } from "@rdm/command-handler";

/**
 * A change-service refusal, as the one RuleViolation: `subject` is what the rule is about (the
 * change unless noted, e.g. "freeze window"), which for NOT_FOUND is also the missing resource's
 * type; `details` lists every unmet condition when there are several.
 */
export function changeRuleViolation(
  code: RuleViolationCode,
  rule: string,
  message: string,
  details: RuleCondition[] = [],
  subject = "change",
): RuleViolation {
  return new RuleViolation(code, rule, message, {
    subject: details[0]?.subject ?? subject,
    conditions: details,
    resourceType: subject,
  });
}
