import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestReleaseLinkedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { changeRuleViolation } from "../rule-violation.js";
import { envelope } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function linkRelease(command: C.LinkRelease, change: ChangeRequest): ChangeRequestEvent[] {
  // Re-delivered or already known links change nothing.
  if (change.linkedReleaseId === command.releaseId) return [];
  if (change.state === ChangeState.CLOSED) {
    throw changeRuleViolation(
      "FAILED_PRECONDITION",
      "change.link_release.state",
      `cannot link closed change ${change.key} to release ${command.releaseId}`,
    );
  }
  return [
    create(ChangeRequestReleaseLinkedSchema, {
      ...envelope(change, change.state),
      linkedReleaseId: command.releaseId,
      previousReleaseId: change.linkedReleaseId,
    }),
  ];
}
