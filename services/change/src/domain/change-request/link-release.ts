import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestReleaseLinkedSchema,
  ChangeRequestReleaseUnlinkedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { envelope } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

/**
 * A release linked the change (mirrored from ReleaseChangeRequestLinked). `confirmed`: the
 * change's current release has the link too (see ChangeRequestState.releaseLinkConfirmed).
 */
export function linkRelease(command: C.LinkRelease, change: ChangeRequest, confirmed: boolean): ChangeRequestEvent[] {
  if (change.linkedReleaseId === command.releaseId) {
    // The release named at RaiseChange linked it back: recorded once, so the link is confirmed.
    // Re-delivered or already known links change nothing.
    return confirmed
      ? []
      : [
          create(ChangeRequestReleaseLinkedSchema, {
            ...envelope(change, change.state),
            linkedReleaseId: command.releaseId,
            releaseEventVersion: command.releaseEventVersion ?? 0n,
          }),
        ];
  }
  // A change implements one release: it keeps the release it has, and a closed one links nothing
  // more (the release linked it before it heard of the close: refused_closed). The other
  // release's link is answered "not linked to it", naming the release kept, if any, and the
  // release service unlinks it there. A release named at RaiseChange that never linked it back
  // (unknown, closed) is replaced.
  const closed = change.state === ChangeState.CLOSED;
  if ((change.linkedReleaseId && confirmed) || closed) {
    return [
      create(ChangeRequestReleaseUnlinkedSchema, {
        ...envelope(change, change.state),
        releaseId: command.releaseId,
        releaseEventVersion: command.releaseEventVersion ?? 0n,
        refusedClosed: closed,
      }),
    ];
  }
  return [
    create(ChangeRequestReleaseLinkedSchema, {
      ...envelope(change, change.state),
      linkedReleaseId: command.releaseId,
      previousReleaseId: change.linkedReleaseId,
      releaseEventVersion: command.releaseEventVersion ?? 0n,
    }),
  ];
}
