import { type DescMessage, type JsonValue, type MessageShape, toJson } from "@bufbuild/protobuf";

/**
 * One field of an answer, by a dotted path (array items by index), as text: a string as it is,
 * anything else as JSON. Fields at their default value count (`false`, `0`, `""`, `[]`), as a
 * shell loop such as `until [ "$(call … --print open)" = true ]` expects; a message field that is
 * not set, or a path the answer's type does not have, throws, showing the whole answer.
 */
export function answerField<T extends DescMessage>(schema: T, answer: MessageShape<T>, fieldPath: string): string {
  const json = toJson(schema, answer, { alwaysEmitImplicit: true });
  let value: JsonValue | undefined = json;
  for (const key of fieldPath.split(".")) {
    value = value && typeof value === "object" ? (value as Record<string, JsonValue>)[key] : undefined;
  }
  if (value === undefined) throw new Error(`the answer has no ${fieldPath}:\n${JSON.stringify(json, null, 2)}`);
  return typeof value === "string" ? value : JSON.stringify(value);
}
