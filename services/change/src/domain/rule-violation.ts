import { type RuleCondition, RuleViolation, type RuleViolationCode } from "@rdm/command-handler";

/**
 * A change-service refusal, as the one RuleViolation: `subject` is what the rule is about (the
 * change unless noted, e.g. "freeze window"), which for NOT_FOUND is the missing resource's type
 * (the command handler names the missing one by its id); `details` lists every unmet condition
 * when there are several.
 */
export function changeRuleViolation(
  code: RuleViolationCode,
  rule: string,
  message: string,
  details: RuleCondition[] = [],
  subject = "change",
): RuleViolation {
  return new RuleViolation(code, rule, message, {
    subject: details[0]?.subject ?? (code === "NOT_FOUND" ? "" : subject),
    conditions: details,
    resourceType: subject,
  });
}
