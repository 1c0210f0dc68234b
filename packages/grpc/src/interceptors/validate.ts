import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { pathToString } from "@bufbuild/protobuf/reflect";
import { createValidator } from "@bufbuild/protovalidate";
import { InvalidArgument } from "../errors.js";
import type { Interceptor } from "../interceptor.js";
import { checkRequestInputRules } from "../request-input-rules.js";

/**
 * Decodes and validates the request (each message of a stream as it arrives) with the request
 * input rules (request-input-rules.ts) and the protovalidate rules of the .proto: a violation is INVALID_ARGUMENT with a google.rpc.BadRequest
 * listing every field, so handlers only ever see valid requests.
 */
export function validateRequests(): Interceptor {
  const validator = createValidator();
  const validate = <Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): void => {
    checkRequestInputRules(schema, message);
    const result = validator.validate(schema, message);
    if (result.kind === "valid") return;
    if (result.kind === "error") throw result.error;
    throw new InvalidArgument(
      result.violations.map((v) => ({ field: pathToString(v.field), description: v.message, reason: v.ruleId })),
    );
  };
  return (next) => async (request, ctx) => {
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
