import { type DescField, type DescMessage, fromBinary, type MessageShape, ScalarType } from "@bufbuild/protobuf";
import { type ReflectMessage, reflect } from "@bufbuild/protobuf/reflect";

// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is what is replaced
const NUL = /\u0000/g;

/**
 * Decodes an event for the projections with every U+0000 in its text replaced by U+FFFD.
 * PostgreSQL `text` and `jsonb` cannot hold U+0000, and the services refuse it at their API
 * since it was found in their events; an event appended before that must still be projected,
 * not dead-lettered, so the character is shown as the replacement character instead.
 */
export function decodeStorable<S extends DescMessage>(schema: S, bytes: Uint8Array): MessageShape<S> {
  const message = fromBinary(schema, bytes);
  // U+0000 in a string is a 0x00 byte of the encoding: without one, there is nothing to replace.
  if (bytes.includes(0)) replaceNul(reflect(schema, message));
  return message;
}

const storable = (text: string) => text.replace(NUL, "\uFFFD");

function replaceNul(message: ReflectMessage): void {
  for (const field of message.fields) {
    if (message.isSet(field)) replaceInField(message, field);
  }
}

function replaceInField(message: ReflectMessage, field: DescField): void {
  const isText = (scalar: ScalarType | undefined) => scalar === ScalarType.STRING;
  switch (field.fieldKind) {
    case "scalar":
      if (isText(field.scalar)) message.set(field, storable(message.get(field) as string));
      return;
    case "message":
      replaceNul(message.get(field));
      return;
    case "list": {
      const list = message.get(field);
      for (let i = 0; i < list.size; i++) {
        const item = list.get(i);
        if (field.listKind === "message") replaceNul(item as ReflectMessage);
        else if (field.listKind === "scalar" && isText(field.scalar)) list.set(i, storable(item as string));
      }
      return;
    }
    case "map": {
      const map = message.get(field);
      for (const [key, value] of [...map]) {
        if (field.mapKind === "message") replaceNul(value as ReflectMessage);
        const storedValue = field.mapKind === "scalar" && isText(field.scalar) ? storable(value as string) : value;
        const storedKey = field.mapKey === ScalarType.STRING ? storable(key as string) : key;
        if (storedKey !== key) map.delete(key);
        map.set(storedKey, storedValue);
      }
      return;
    }
    case "enum":
      return;
  }
}
