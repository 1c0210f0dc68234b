import { randomUUID } from "node:crypto";
import type * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { type ReleaseApiDeps, type ReleaseHandlers, releaseCommandRpc } from "./release-rpc.js";

/** Approvals and tasks of the current phase. */
export function releaseApprovalAndTaskHandlers(
  deps: ReleaseApiDeps,
): Pick<
  ReleaseHandlers,
  | "requestReleaseApproval"
  | "approveRelease"
  | "rejectRelease"
  | "addReleaseTask"
  | "assignReleaseTask"
  | "startReleaseTask"
  | "completeReleaseTask"
  | "cancelReleaseTask"
> {
  const { cmd } = releaseCommandRpc(deps);
  return {
    requestReleaseApproval: cmd("requestReleaseApproval", (r: api.RequestReleaseApprovalRequest) => ({
      kind: "requestApproval",
      approvalId: randomUUID(),
      approverGroup: r.approverGroup,
    })),
    approveRelease: cmd("approveRelease", (r: api.ApproveReleaseRequest) => ({
      kind: "approveRelease",
      approvalId: r.approvalId,
      comment: r.comment,
    })),
    rejectRelease: cmd("rejectRelease", (r: api.RejectReleaseRequest) => ({
      kind: "rejectRelease",
      approvalId: r.approvalId,
      reason: r.reason,
    })),
    addReleaseTask: cmd("addReleaseTask", (r: api.AddReleaseTaskRequest) => ({
      kind: "addTask",
      taskId: randomUUID(),
      name: r.name,
      required: r.required,
      assignee: r.assignee,
      dueAt: r.dueAt,
    })),
    assignReleaseTask: cmd("assignReleaseTask", (r: api.AssignReleaseTaskRequest) => ({
      kind: "assignTask",
      taskId: r.taskId,
      assignee: r.assignee,
    })),
    startReleaseTask: cmd("startReleaseTask", (r: api.StartReleaseTaskRequest) => ({
      kind: "startTask",
      taskId: r.taskId,
    })),
    completeReleaseTask: cmd("completeReleaseTask", (r: api.CompleteReleaseTaskRequest) => ({
      kind: "completeTask",
      taskId: r.taskId,
    })),
    cancelReleaseTask: cmd("cancelReleaseTask", (r: api.CancelReleaseTaskRequest) => ({
      kind: "cancelTask",
      taskId: r.taskId,
      reason: r.reason,
    })),
  };
}
