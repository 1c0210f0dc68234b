import type { Timestamp } from "@bufbuild/protobuf/wkt";

/**
 * A Timestamp's instant as a Date, its sub-millisecond part dropped; `otherwise` when there is no
 * Timestamp (a field left unset). protobuf-es's `timestampDate` rounds instead, which carries
 * 9999-12-31T23:59:59.9995Z and later, valid Timestamps, into year 10000: a date PostgreSQL
 * refuses and JSON writes as `+010000-…`.
 */
export function instantOf(timestamp: Timestamp): Date;
export function instantOf<T>(timestamp: Timestamp | undefined, otherwise: T): Date | T;
export function instantOf<T>(timestamp: Timestamp | undefined, otherwise?: T): Date | T | undefined {
  if (!timestamp) return otherwise;
  return new Date(Number(timestamp.seconds) * 1000 + Math.floor(timestamp.nanos / 1_000_000));
}
