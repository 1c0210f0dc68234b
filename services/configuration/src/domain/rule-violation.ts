/** A domain refusal: `rule` names the rule that refused, `code` says how the API reports it. */
export class ConfigurationRuleViolation extends Error {
  override readonly name = "ConfigurationRuleViolation";
  constructor(
    readonly code: "ALREADY_EXISTS" | "FAILED_PRECONDITION" | "NOT_FOUND" | "INVALID_ARGUMENT",
    readonly rule: string,
    message: string,
    readonly subject = "",
  ) {
    super(message);
  }
}
