// Which handler errors send an event to the dead-letter topic at once.
import { isPermanent, PermanentError } from "../src/failures.js";

/** A refusal as @rdm/command-handler throws it (matched by name, as the consumer matches it). */
const ruleViolation = (code: string, rule: string) =>
  Object.assign(new Error(`refused: ${rule}`), { name: "RuleViolation", code, rule });

test("a command invalid whatever the state is permanent; a refusal that depends on the state is retried", () => {
  expect(isPermanent(ruleViolation("INVALID_ARGUMENT", "event.too_large"))).toBe(true);
  expect(isPermanent(ruleViolation("FAILED_PRECONDITION", "gate.not_met"))).toBe(false);
  expect([isPermanent(new PermanentError("undecodable")), isPermanent(new Error("timeout"))]).toEqual([true, false]);
});
