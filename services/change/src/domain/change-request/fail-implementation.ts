import { create } from "@bufbuild/protobuf";
import { type ChangeRequest, ChangeState } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import { ChangeRequestFailedSchema } from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { envelope, requireState } from "./rules.js";
import type * as C from "./types.js";
import type { ChangeRequestEvent } from "./types.js";

export function failImplementation(command: C.FailImplementation, change: ChangeRequest): ChangeRequestEvent[] {
  // A deployment of the linked release may fail before anyone marked the change started; the
  // deployment that implemented it, backed out afterwards, fails it once IMPLEMENTED too.
  const backedOut = !!command.deploymentId && command.deploymentId === change.implementedByDeploymentId;
  requireState(change, "fail", [
    ChangeState.SCHEDULED,
    ChangeState.IMPLEMENTING,
    ...(backedOut ? [ChangeState.IMPLEMENTED] : []),
  ]);
  return [
    create(ChangeRequestFailedSchema, {
      ...envelope(change, ChangeState.FAILED),
      reason: command.reason,
      backoutPlan: change.backoutPlan,
      deploymentId: command.deploymentId ?? "",
      environment: command.environment ?? "",
    }),
  ];
}
