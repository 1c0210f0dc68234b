import { type DescField, type DescMessage, type MessageShape, ScalarType } from "@bufbuild/protobuf";
import { type Path, pathToString, type ReflectMessage, reflect } from "@bufbuild/protobuf/reflect";

/*
 * Rules every message obeys whatever its type, checked by walking the message, so a field added
 * tomorrow is covered without an annotation: every request a service takes (@rdm/grpc) and every
 * event a consumer takes (@rdm/messaging). They keep out what a service could store but one of its
 * consumers could not: PostgreSQL `text` cannot hold U+0000, and neither PostgreSQL nor a
 * JavaScript Date nor protobuf's JSON mapping holds an instant outside the years 1..9999.
 */

/** One broken rule: the proto path of the field, the rule and what is wrong. */
export interface InputViolation {
  field: string;
  reason: string;
  description: string;
}

/** Which repeated fields the walk leaves to someone else (e.g. a bulk request's handler). */
export interface InputWalkOptions {
  skipList?: (field: DescField) => boolean;
}

/** Tab, LF and CR are text; every other C0 control character is refused. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point
const FORBIDDEN_CONTROL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]/;
/** In Unicode mode a surrogate class matches only surrogates that are not half of a pair. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** 0001-01-01T00:00:00Z, the first instant of protobuf's Timestamp range. */
const MIN_TIMESTAMP_SECONDS = -62_135_596_800n;
/** 9999-12-31T23:59:59Z: the last whole second of protobuf's Timestamp range. */
const MAX_TIMESTAMP_SECONDS = 253_402_300_799n;
/**
 * Within the last second, at most .999999: PostgreSQL keeps microseconds and rounds to them, so
 * 9999-12-31T23:59:59.9999995Z and later would be stored as year 10000, which nothing reads back.
 */
const MAX_NANOS_IN_LAST_SECOND = 999_999_000;
/** protobuf's Duration range: ±10,000 years. */
const MAX_DURATION_SECONDS = 315_576_000_000n;
const MAX_NANOS = 999_999_999;

const RULE_CONTROL_CHARACTER = "string.no_control_characters";
const RULE_WELL_FORMED = "string.well_formed_utf16";
const RULE_TIMESTAMP_RANGE = "timestamp.range";
const RULE_DURATION_RANGE = "duration.range";

/** Every violation of the input rules in `message`, with the proto path of the field. */
export function inputViolations<S extends DescMessage>(
  schema: S,
  message: MessageShape<S>,
  options: InputWalkOptions = {},
): InputViolation[] {
  const violations: InputViolation[] = [];
  walkMessage(reflect(schema, message), [], { out: violations, skipList: options.skipList ?? (() => false) });
  return violations;
}

interface Walk {
  out: InputViolation[];
  skipList: (field: DescField) => boolean;
}

function walkMessage(message: ReflectMessage, path: Path, walk: Walk): void {
  const { out } = walk;
  const typeName = message.desc.typeName;
  if (typeName === "google.protobuf.Timestamp") {
    checkTimestamp(message, path, out);
    return;
  }
  if (typeName === "google.protobuf.Duration") {
    checkDuration(message, path, out);
    return;
  }
  for (const field of message.fields) {
    if (!message.isSet(field)) continue;
    walkField(message, field, [...path, field], walk);
  }
}

function walkField(message: ReflectMessage, field: DescField, path: Path, walk: Walk): void {
  const { out } = walk;
  switch (field.fieldKind) {
    case "scalar":
      if (field.scalar === ScalarType.STRING) checkText(message.get(field) as string, path, out);
      return;
    case "message":
      walkMessage(message.get(field), path, walk);
      return;
    case "list": {
      if (walk.skipList(field)) return;
      let index = 0;
      for (const item of message.get(field)) {
        const itemPath: Path = [...path, { kind: "list_sub", index: index++ }];
        if (field.listKind === "message") walkMessage(item as ReflectMessage, itemPath, walk);
        else if (field.listKind === "scalar" && field.scalar === ScalarType.STRING)
          checkText(item as string, itemPath, out);
      }
      return;
    }
    case "map":
      for (const [key, value] of message.get(field)) {
        const entryPath: Path = [...path, { kind: "map_sub", key: key as string }];
        if (field.mapKey === ScalarType.STRING) checkText(key as string, entryPath, out);
        if (field.mapKind === "message") walkMessage(value as ReflectMessage, entryPath, walk);
        else if (field.mapKind === "scalar" && field.scalar === ScalarType.STRING)
          checkText(value as string, entryPath, out);
      }
      return;
    case "enum":
      return;
  }
}

function checkText(text: string, path: Path, out: InputViolation[]): void {
  const control = FORBIDDEN_CONTROL.exec(text);
  if (control) {
    const code = (control[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, "0");
    out.push({
      field: pathToString(path),
      reason: RULE_CONTROL_CHARACTER,
      description: `must not contain control characters other than tab, line feed and carriage return (found U+${code} at index ${control.index})`,
    });
  }
  if (LONE_SURROGATE.test(text)) {
    out.push({
      field: pathToString(path),
      reason: RULE_WELL_FORMED,
      description: "must be well-formed Unicode (it contains a lone surrogate)",
    });
  }
}

function checkTimestamp(timestamp: ReflectMessage, path: Path, out: InputViolation[]): void {
  const seconds = BigInt(timestamp.get(timestamp.desc.field.seconds as DescField) as bigint | string);
  const nanos = timestamp.get(timestamp.desc.field.nanos as DescField) as number;
  const inRange =
    nanos >= 0 &&
    nanos <= MAX_NANOS &&
    seconds >= MIN_TIMESTAMP_SECONDS &&
    seconds <= MAX_TIMESTAMP_SECONDS &&
    !(seconds === MAX_TIMESTAMP_SECONDS && nanos > MAX_NANOS_IN_LAST_SECOND);
  if (inRange) return;
  out.push({
    field: pathToString(path),
    reason: RULE_TIMESTAMP_RANGE,
    description:
      "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, with nanos between 0 and 999,999,999",
  });
}

function checkDuration(duration: ReflectMessage, path: Path, out: InputViolation[]): void {
  const seconds = BigInt(duration.get(duration.desc.field.seconds as DescField) as bigint | string);
  const nanos = duration.get(duration.desc.field.nanos as DescField) as number;
  const absSeconds = seconds < 0n ? -seconds : seconds;
  const signsAgree = seconds === 0n || nanos === 0 || seconds < 0n === nanos < 0;
  if (absSeconds <= MAX_DURATION_SECONDS && Math.abs(nanos) <= MAX_NANOS && signsAgree) return;
  out.push({
    field: pathToString(path),
    reason: RULE_DURATION_RANGE,
    description:
      "must be within ±315,576,000,000 seconds, with nanos within ±999,999,999 and of the same sign as the seconds",
  });
}
