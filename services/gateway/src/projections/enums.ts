import type { DescEnum } from "@bufbuild/protobuf";

/** Enum value -> its name without the type prefix (RELEASE_TYPE_MAJOR -> MAJOR), as the views store it. */
export function enumName(schema: DescEnum, value: number): string {
  return schema.values.find((v) => v.number === value)?.localName ?? "UNSPECIFIED";
}
