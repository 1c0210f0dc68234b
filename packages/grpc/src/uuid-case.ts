import { type DescField, type DescMessage, getOption, type MessageShape } from "@bufbuild/protobuf";
import { type ReflectList, type ReflectMessage, reflect } from "@bufbuild/protobuf/reflect";
import { type FieldRules, field as fieldRules } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

/*
 * A UUID is one value whatever the case of its hex digits (RFC 9562 §4: read either, write
 * lowercase), and the services make theirs lowercase. Ids are keys in streams, tables and
 * Kafka messages, where case counts, so every field the .proto marks `string.uuid` is made
 * lowercase as the request arrives: a client that sends a service's id in capitals names the
 * same release, change or deployment, and a link made with it counts the same.
 */

/** Where a message type's UUID fields are: its own, and the message fields that lead to more. */
interface UuidFields {
  single: DescField[];
  repeated: DescField[];
  nested: DescField[];
}

const plans = new Map<DescMessage, UuidFields | undefined>();

/** Lowercases, in place, every field of `message` (at any depth) that the .proto marks `string.uuid`. */
export function lowercaseUuids<S extends DescMessage>(schema: S, message: MessageShape<S>): void {
  if (planOf(schema)) lowercaseIn(reflect(schema, message));
}

function lowercaseIn(message: ReflectMessage): void {
  const plan = planOf(message.desc);
  if (!plan) return;
  for (const field of plan.single) {
    const value = message.get(field) as string;
    if (value !== value.toLowerCase()) message.set(field, value.toLowerCase());
  }
  for (const field of plan.repeated) {
    const list = message.get(field) as ReflectList<string>;
    for (let i = 0; i < list.size; i++) {
      const value = list.get(i) as string;
      if (value !== value.toLowerCase()) list.set(i, value.toLowerCase());
    }
  }
  for (const field of plan.nested) {
    if (!message.isSet(field)) continue;
    if (field.fieldKind === "list")
      for (const item of message.get(field) as Iterable<ReflectMessage>) lowercaseIn(item);
    else lowercaseIn(message.get(field) as ReflectMessage);
  }
}

/** The UUID fields of a message type, or undefined when it holds none at any depth; computed once a type. */
function planOf(desc: DescMessage): UuidFields | undefined {
  if (plans.has(desc)) return plans.get(desc);
  const plan: UuidFields = { single: [], repeated: [], nested: [] };
  for (const field of desc.fields) {
    const nested = nestedMessage(field);
    if (isUuidField(field)) (field.fieldKind === "list" ? plan.repeated : plan.single).push(field);
    else if (nested && reachesUuids(nested, new Set())) plan.nested.push(field);
  }
  const found = plan.single.length + plan.repeated.length + plan.nested.length > 0 ? plan : undefined;
  plans.set(desc, found);
  return found;
}

/** Whether a UUID field is in this type or one it reaches (`seen`: types already looked at). */
function reachesUuids(desc: DescMessage, seen: Set<DescMessage>): boolean {
  if (seen.has(desc)) return false;
  seen.add(desc);
  return desc.fields.some((field) => {
    const nested = nestedMessage(field);
    return isUuidField(field) || (nested !== undefined && reachesUuids(nested, seen));
  });
}

/** A string field, single or repeated, whose protovalidate rules say `string.uuid`. */
function isUuidField(field: DescField): boolean {
  if (field.fieldKind === "scalar") return isUuid(getOption(field, fieldRules).type);
  if (field.fieldKind !== "list" || field.listKind !== "scalar") return false;
  const rules = getOption(field, fieldRules).type;
  return rules.case === "repeated" && isUuid(rules.value.items?.type);
}

const nestedMessage = (field: DescField): DescMessage | undefined =>
  field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message")
    ? field.message
    : undefined;

function isUuid(rules: FieldRules["type"] | undefined): boolean {
  return rules?.case === "string" && rules.value.wellKnown.case === "uuid" && rules.value.wellKnown.value;
}
