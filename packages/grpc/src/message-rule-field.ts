import { type DescMessage, getOption, hasOption } from "@bufbuild/protobuf";
import { message as messageRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const found = new Map<DescMessage, Map<string, string | undefined>>();

/**
 * The field a message-level protovalidate rule of `schema` is about, for its violation's
 * BadRequest field (protovalidate leaves the path empty, which tells a client nothing): the field
 * its id starts with (`secret.length` → `secret`), else the one field of the message its
 * expression reads (`has(this.window.start) && has(this.window.end)` → `window`), else the one of
 * the fields it reads that its message names (`this.type != 1 || this.template_id != ''`, "a
 * STANDARD change ...: template_id is required" → `template_id`). Undefined when none of these
 * names a single field. Worked out once per rule.
 */
export function fieldOfMessageRule(schema: DescMessage, ruleId: string): string | undefined {
  let byRule = found.get(schema);
  if (!byRule) {
    byRule = new Map();
    found.set(schema, byRule);
    const names = new Set(schema.fields.map((f) => f.name));
    const rules = hasOption(schema, messageRules) ? getOption(schema, messageRules).cel : [];
    for (const rule of rules) {
      const prefix = rule.id.split(".")[0] ?? "";
      const read = new Set([...rule.expression.matchAll(/\bthis\.(\w+)/g)].map((m) => m[1] as string));
      const fields = [...read].filter((name) => names.has(name));
      // Of two fields read, the one the message tells the caller about is the one to fix.
      const named = fields.filter((name) => new RegExp(`\\b${name}\\b`).test(rule.message));
      byRule.set(
        rule.id,
        names.has(prefix) ? prefix : fields.length === 1 ? fields[0] : named.length === 1 ? named[0] : undefined,
      );
    }
  }
  return byRule.get(ruleId);
}
