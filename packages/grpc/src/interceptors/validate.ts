import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { type FieldViolation, InvalidArgument } from "../errors.js";
import type { Interceptor } from "../interceptor.js";
import { fieldOfMessageRule } from "../message-rule-field.js";
import { requestInputViolations } from "../request-input-rules.js";
import { lowercaseUuids } from "../uuid-case.js";

/** What a request validator says of one message: every violation; none: valid. */
export type RequestValidator = <Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
) => FieldViolation[];

let shared: Promise<RequestValidator> | undefined;

/**
 * The process's request validator: every violation of a message's request input rules
 * (request-input-rules.ts), then, when there is none, of its protovalidate rules; none: valid.
 * What validateRequests checks of each request, for handlers that validate the items of a bulk
 * request one by one.
 *
 * protovalidate (with its CEL runtime and RE2 engine) is loaded on the first call, not at start:
 * a process that only calls services (the gateway, the executor) never needs it.
 */
export function requestValidator(): Promise<RequestValidator> {
  shared ??= loadRequestValidator();
  return shared;
}

async function loadRequestValidator(): Promise<RequestValidator> {
  const { createValidator } = await import("@bufbuild/protovalidate");
  const validator = createValidator();
  return (schema, message) => {
    const inputViolations = requestInputViolations(schema, message);
    if (inputViolations.length > 0) return inputViolations;
    const result = validator.validate(schema, message);
    if (result.kind === "valid") return [];
    if (result.kind === "error") throw result.error;
    return result.violations.map((v) => ({
      // A rule of the request message itself has no path: the field it is about, when it names one.
      field: pathToString(v.field) || (fieldOfMessageRule(schema, v.ruleId) ?? ""),
      description: v.message,
      reason: v.ruleId,
    }));
  };
}

/**
 * Decodes and validates the request (each message of a stream as it arrives) with the request
 * input rules (request-input-rules.ts) and the protovalidate rules of the .proto: a violation is INVALID_ARGUMENT with a google.rpc.BadRequest
 * listing every field, so handlers only ever see valid requests. The UUIDs of a valid request are
 * then made lowercase (uuid-case.ts).
 */
export function validateRequests(): Interceptor {
  return (next) => async (request, ctx) => {
    const check = await requestValidator();
    const validate = <Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): void => {
      const found = check(schema, message);
      if (found.length > 0) throw new InvalidArgument(found);
      lowercaseUuids(schema, message);
    };
    const schema = ctx.method.input;
    if (request.kind === "unary") {
      validate(schema, request.message);
      return next(request, ctx);
    }
    const messages = request.messages;
    async function* validated() {
      for await (const message of messages) {
        validate(schema, message);
        yield message;
      }
    }
    return next({ kind: "client_streaming", messages: validated() }, ctx);
  };
}
