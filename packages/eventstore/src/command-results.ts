/** The recorded answers of client commands, by request id (table command_results). */

export interface CommandResult {
  requestHash: string | null;
  /** The answer's bytes; none when the answer is the stream's state at `streamVersion`, rebuilt from its events. */
  response: Uint8Array | null;
  streamId: string | null;
  /** The stream's version after the command (appended at an expected version, or a no-op's read). */
  streamVersion: number | null;
}

/** A command_results row as read. */
export interface CommandResultRow {
  request_hash: string | null;
  response: Buffer | null;
  stream_id: string | null;
  stream_version: string | null;
}

export const COMMAND_RESULT_COLUMNS = "request_hash, response, stream_id, stream_version";

export const commandResultOf = (row: CommandResultRow): CommandResult => ({
  requestHash: row.request_hash,
  response: row.response ? new Uint8Array(row.response) : null,
  streamId: row.stream_id,
  streamVersion: row.stream_version === null ? null : Number(row.stream_version),
});
