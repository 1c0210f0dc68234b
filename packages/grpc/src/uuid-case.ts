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
  plans.set(desc, undefined); // a type that contains itself: its own plan is being made
  const plan: UuidFields = { single: [], repeated: [], nested: [] };
  for (const field of desc.fields) {
    if (field.fieldKind === "scalar" && isUuid(getOption(field, fieldRules).type)) plan.single.push(field);
    else if (field.fieldKind === "list" && field.listKind === "scalar") {
      const rules = getOption(field, fieldRules).type;
      if (rules.case === "repeated" && isUuid(rules.value.items?.type)) plan.repeated.push(field);
    } else if (
      (field.fieldKind === "message" || (field.fieldKind === "list" && field.listKind === "message")) &&
      field.message
    ) {
      if (field.message === desc || planOf(field.message)) plan.nested.push(field);
    }
  }
  const found = plan.single.length + plan.repeated.length + plan.nested.length > 0 ? plan : undefined;
  plans.set(desc, found);
  return found;
}

function isUuid(rules: FieldRules["type"] | undefined): boolean {
  return rules?.case === "string" && rules.value.wellKnown.case === "uuid" && rules.value.wellKnown.value;
}
