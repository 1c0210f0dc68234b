import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { requireActive, ts } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function recordLogEntry(
  command: ReleaseCommandOf<"recordLogEntry">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  requireActive(state);
  return [
    create(ev.ReleaseLogEntryRecordedSchema, {
      releaseId,
      entry: {
        entryId: command.entryId,
        kind: command.entryKind,
        text: command.text,
        recordedBy: ctx.actor,
        recordedAt: ts(ctx.now),
      },
    }),
  ];
}
