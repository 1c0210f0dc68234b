// What the property tests of accepted input share: text generators that mostly produce what the
// API takes and now and then anything at all, the "accepted or INVALID_ARGUMENT" rule, and the
// check that every event a service appended was handled (not dead-lettered) by a consumer.
import { errorDetails, GrpcStatus } from "@rdm/grpc";
import { waitFor } from "@rdm/testkit";
import fc from "fast-check";
import pg from "pg";

/** Characters the API takes: any grapheme, and the awkward ones storage and JSON must still keep. */
const acceptedCharacter = fc.oneof(
  fc.string({ unit: "grapheme", minLength: 1, maxLength: 1 }),
  fc.constantFrom("\t", "\n", "\r", "\u007f", "\u0085", "\u00a0", "\u2028", "\u202e", "\ufeff", "\ufffd"),
  fc.constantFrom("🚀", "ß", "İ", "\\", '"', "'", "%", "\u0301"),
);
/** Any code point, and the ones the API refuses (C0 controls, lone surrogates) often. */
const anyCharacter = fc.oneof(
  acceptedCharacter,
  fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  fc.constantFrom("\u0000", "\u0001", "\u000b", "\u001b", "\u001f", "\ud800", "\udfff"),
);
/** Mostly text the API takes (so that events flow), now and then anything at all. */
export const text = (minLength: number, maxLength: number, unit = acceptedCharacter) =>
  fc.oneof(
    { weight: 9, arbitrary: fc.string({ unit, minLength, maxLength }) },
    { weight: 1, arbitrary: fc.string({ unit: anyCharacter, minLength, maxLength }) },
  );

/** Characters an id the API takes may have: no space, no control character. */
const idCharacter = acceptedCharacter.filter((c) => [...c].every((unit) => unit > " " && unit !== "\u007f"));

/** Mostly ids the API takes (a target's), now and then anything at all. */
export const idText = (minLength: number, maxLength: number) => text(minLength, maxLength, idCharacter);

/** The call's answer, or undefined when it was refused with INVALID_ARGUMENT naming a field; any other refusal fails. */
export async function acceptedOrInvalid<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await call;
  } catch (error) {
    const { code, message, badRequest } = errorDetails(error);
    if (code !== GrpcStatus.INVALID_ARGUMENT) throw new Error(`refused with ${GrpcStatus[code]}: ${message}`);
    // Named: a refusal that says which field is wrong (not a database's "out of range" after the fact).
    if (!badRequest?.fieldViolations.some((v) => v.field !== ""))
      throw new Error(`refused with INVALID_ARGUMENT naming no field: ${message}`);
    return undefined;
  }
}

/** The ids of the events a service appended, of the given types only when `types` is given. */
export async function eventIds(databaseUrl: string, types?: ReadonlySet<string>): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ event_id: string; type: string }>("SELECT event_id, type FROM events");
    return rows.filter((r) => !types || types.has(r.type)).map((r) => r.event_id);
  } finally {
    await client.end();
  }
}

async function unhandled(databaseUrl: string, ids: string[]): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ event_id: string }>(
      "SELECT event_id FROM rdm_handled_events WHERE event_id = ANY($1::text[])",
      [ids],
    );
    const handled = new Set(rows.map((r) => r.event_id));
    return ids.filter((id) => !handled.has(id));
  } finally {
    await client.end();
  }
}

/** Waits until every consumer named has handled every event id given with it; fails naming the missing ones. */
export async function everyEventHandled(consumers: [name: string, databaseUrl: string, ids: string[]][]) {
  for (const [consumer, databaseUrl, ids] of consumers) {
    let missing: string[] = ids;
    await waitFor(
      async () => {
        missing = await unhandled(databaseUrl, missing);
        return missing.length === 0;
      },
      { timeoutMs: 60_000, description: `${consumer}: every appended event handled` },
    ).catch((error: Error) => {
      throw new Error(`${error.message}; ${missing.length} not handled, e.g. ${missing.slice(0, 5).join(", ")}`, {
        cause: error,
      });
    });
  }
}
