import type { DescEnum } from "@bufbuild/protobuf";

/** Enum value -> its name without the type prefix (RELEASE_TYPE_MAJOR -> MAJOR), as the views store it. */
export function enumName(schema: DescEnum, value: number): string {
  return schema.values.find((v) => v.number === value)?.localName ?? "UNSPECIFIED";
}

/** Every value's name without the type prefix, UNSPECIFIED left out: the names the views hold. */
export function enumNames(schema: DescEnum): string[] {
  return schema.values.filter((v) => v.number !== 0).map((v) => v.localName);
}

/** A comma-separated filter of enum names as the views hold them, in any case: the names, or the first entry that is none. */
export function parseEnumList(schema: DescEnum, list: string): { names: string[] } | { unknown: string } {
  const known = enumNames(schema);
  const names = list.split(",").map((entry) => entry.trim().toUpperCase());
  const unknown = names.find((name) => !known.includes(name));
  return unknown === undefined ? { names } : { unknown };
}
