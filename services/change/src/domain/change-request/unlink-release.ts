import { create } from "@bufbuild/protobuf";
import type { ChangeRequest } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestReleaseUnlinkedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { envelope } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function unlinkRelease(command: C.UnlinkRelease, change: ChangeRequest): ChangeRequestEvent[] {
  if (change.linkedReleaseId !== command.releaseId) return [];
  return [
    create(ChangeRequestReleaseUnlinkedSchema, {
      ...envelope(change, change.state),
      linkedReleaseId: "",
      releaseId: command.releaseId,
      releaseEventVersion: command.releaseEventVersion ?? 0n,
    }),
  ];
}
