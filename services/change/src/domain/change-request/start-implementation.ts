import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeImplementationStartedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { envelope, requireState } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function startImplementation(command: C.StartImplementation, change: ChangeRequest): ChangeRequestEvent[] {
  requireState(change, "start_implementation", [ChangeState.SCHEDULED]);
  return [
    create(ChangeImplementationStartedSchema, {
      ...envelope(change, ChangeState.IMPLEMENTING),
      deploymentId: command.deploymentId ?? "",
      environment: command.environment ?? "",
    }),
  ];
}
