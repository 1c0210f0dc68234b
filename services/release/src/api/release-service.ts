import { READER_ROLES, type Role } from "@rdm/auth";
import type { ServiceRegistration } from "@rdm/grpc";
import * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { releaseApprovalAndTaskHandlers } from "./release-approvals-tasks.js";
import { releaseLifecycleHandlers } from "./release-lifecycle.js";
import { releaseListingHandlers } from "./release-listings.js";
import { releaseModelHandlers } from "./release-models.js";
import { releasePackageHandlers } from "./release-package.js";
import { releaseQueryHandlers } from "./release-queries.js";
import type { ReleaseApiDeps } from "./release-rpc.js";

const MANAGER: Role[] = ["release-manager"];
const PLANNERS: Role[] = ["release-manager", "release-coordinator"];
const WORKERS: Role[] = ["release-manager", "release-coordinator", "deployer"];

/** Who may call each RPC (admin always may); the gRPC server refuses anyone else before the handler. */
export const releaseServiceRoles: { [K in keyof (typeof api.ReleaseService)["method"]]: readonly Role[] } = {
  registerRelease: MANAGER,
  getRelease: READER_ROLES,
  listReleases: READER_ROLES,
  getReleaseHistory: READER_ROLES,
  getReleaseGate: READER_ROLES,
  updateReleasePlanning: PLANNERS,
  advanceReleasePhase: PLANNERS,
  reworkRelease: MANAGER,
  abandonRelease: MANAGER,
  closeRelease: MANAGER,
  requestReleaseApproval: PLANNERS,
  approveRelease: ["approver"],
  rejectRelease: ["approver"],
  addReleaseTask: PLANNERS,
  assignReleaseTask: PLANNERS,
  startReleaseTask: WORKERS,
  completeReleaseTask: WORKERS,
  cancelReleaseTask: PLANNERS,
  linkChangeRequest: [...PLANNERS, "change-manager"],
  unlinkChangeRequest: [...PLANNERS, "change-manager"],
  attachReleaseArtifact: [...WORKERS, "config-manager"],
  detachReleaseArtifact: [...WORKERS, "config-manager"],
  setBackOutPlan: PLANNERS,
  recordReleaseLogEntry: [...WORKERS, "approver", "change-manager"],
  recordPostImplementationReview: PLANNERS,
  createReleaseModel: MANAGER,
  getReleaseModel: READER_ROLES,
  listReleaseModels: READER_ROLES,
  listNotificationDeliveries: READER_ROLES,
};

/** The release service: its RPCs, composed from one module per group of RPCs. */
export function releaseServiceHandlers(
  deps: ReleaseApiDeps,
): ServiceRegistration<(typeof api.ReleaseService)["method"]> {
  return {
    service: api.ReleaseService,
    roles: releaseServiceRoles,
    handlers: {
      ...releaseQueryHandlers(deps),
      ...releaseListingHandlers(deps),
      ...releaseLifecycleHandlers(deps),
      ...releaseApprovalAndTaskHandlers(deps),
      ...releasePackageHandlers(deps),
      ...releaseModelHandlers(deps),
    },
  };
}
