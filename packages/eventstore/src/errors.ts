/** The stream's version was not what the command was decided against. The gRPC layer maps this name to ABORTED. */
export class WrongExpectedVersion extends Error {
  override readonly name = "WrongExpectedVersion";
  constructor(
    readonly streamId: string,
    readonly expected: ExpectedVersion,
    readonly actual: number,
    reason?: string,
  ) {
    super(
      reason ??
        `stream ${streamId}: expected version ${String(expected)}, actual ${actual === 0 ? "no_stream" : actual}`,
    );
  }
}

/** The store refused an append because another writer appended to the stream first. */
export const isConflict = (error: unknown): error is WrongExpectedVersion =>
  error instanceof Error && error.name === "WrongExpectedVersion";

/** A command with this request id was already executed; the caller returns the stored response. */
export class DuplicateRequest extends Error {
  override readonly name = "DuplicateRequest";
  constructor(readonly requestId: string) {
    super(`request ${requestId} was already executed`);
  }
}

/** A number is the stream's current version (0 = no events); "no_stream" = must not exist; "any" = no check. */
export type ExpectedVersion = number | "no_stream" | "any";

/**
 * PostgreSQL's SQLSTATE class 22, data exception: a value it cannot store or compare (a NUL
 * character, a date out of its range, text that is not a uuid). The input's fault: no retry helps.
 */
export function isDataException(error: unknown): boolean {
  return isSqlStateClass(error, "22");
}

/** A PostgreSQL error (pg's DatabaseError: name "error") whose SQLSTATE is of class `sqlClass`. */
function isSqlStateClass(error: unknown, sqlClass: string): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  return (
    error instanceof Error &&
    error.name === "error" &&
    typeof code === "string" &&
    new RegExp(`^${sqlClass}[0-9A-Z]{3}$`).test(code)
  );
}

/**
 * PostgreSQL's SQLSTATE class 40, transaction rollback: a deadlock broken (40P01) or a
 * serialization failure (40001). Concurrent transactions collided: the same call again may pass.
 */
export function isTransactionCollision(error: unknown): boolean {
  return isSqlStateClass(error, "40");
}
