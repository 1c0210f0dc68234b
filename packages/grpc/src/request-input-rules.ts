import { type DescField, type DescMessage, getOption, type MessageShape } from "@bufbuild/protobuf";
import { field as fieldRules, Ignore } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { inputViolations } from "@rdm/proto";
import { type FieldViolation, InvalidArgument } from "./errors.js";

/** Every violation of the input rules (`@rdm/proto`) in a request, with the proto path of the field. */
export function requestInputViolations<S extends DescMessage>(schema: S, message: MessageShape<S>): FieldViolation[] {
  return inputViolations(schema, message, { skipList: itemsValidatedByHandler });
}

/** Throws INVALID_ARGUMENT with a field violation per broken rule; returns when there is none. */
export function checkRequestInputRules<S extends DescMessage>(schema: S, message: MessageShape<S>): void {
  const violations = requestInputViolations(schema, message);
  if (violations.length > 0) throw new InvalidArgument(violations);
}

/**
 * A repeated field whose items' protovalidate rules say IGNORE_ALWAYS: the service checks each
 * item itself (with requestValidator), so neither rule set refuses the whole request for one.
 */
function itemsValidatedByHandler(field: DescField): boolean {
  const rules = getOption(field, fieldRules);
  return rules.type.case === "repeated" && rules.type.value.items?.ignore === Ignore.ALWAYS;
}
