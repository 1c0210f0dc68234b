import { randomUUID } from "node:crypto";
import type * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { changeAsHeard, changeHeldBy, changeStatesIfDeploying } from "../consumers/change-requests.js";
import { type ReleaseApiDeps, type ReleaseHandlers, releaseCommandRpc } from "./release-rpc.js";

/** Linked changes, the package, the back-out plan, the log and the review. */
export function releasePackageHandlers(
  deps: ReleaseApiDeps,
): Pick<
  ReleaseHandlers,
  | "linkChangeRequest"
  | "unlinkChangeRequest"
  | "attachReleaseArtifact"
  | "detachReleaseArtifact"
  | "setBackOutPlan"
  | "recordReleaseLogEntry"
  | "recordPostImplementationReview"
> {
  const { cmd } = releaseCommandRpc(deps);
  return {
    linkChangeRequest: cmd("linkChangeRequest", async (r: api.LinkChangeRequestRequest, _state, tx) => {
      const heard = await changeAsHeard(tx, r.changeRequestId);
      return {
        kind: "linkChangeRequest",
        changeRequestId: r.changeRequestId,
        changeLinkedTo: await changeHeldBy(tx, r.changeRequestId, heard),
        changeState: heard.state,
      };
    }),
    unlinkChangeRequest: cmd(
      "unlinkChangeRequest",
      async (r: api.UnlinkChangeRequestRequest, state, tx) => ({
        kind: "unlinkChangeRequest",
        changeRequestId: r.changeRequestId,
        changeState: (await changeAsHeard(tx, r.changeRequestId)).state,
        changes: await changeStatesIfDeploying(tx, state.release),
      }),
      // It may move a release held in DEPLOYMENT on, as a change state's reaction may.
      { inReactionTurn: true },
    ),
    attachReleaseArtifact: cmd("attachReleaseArtifact", (r: api.AttachReleaseArtifactRequest) => ({
      kind: "attachArtifact",
      artifact: {
        artifactId: r.artifactId,
        name: r.name,
        version: r.version,
        sha256: r.sha256,
        configurationItemId: r.configurationItemId,
      },
    })),
    detachReleaseArtifact: cmd("detachReleaseArtifact", (r: api.DetachReleaseArtifactRequest) => ({
      kind: "detachArtifact",
      artifactId: r.artifactId,
    })),
    setBackOutPlan: cmd("setBackOutPlan", (r: api.SetBackOutPlanRequest) => ({
      kind: "setBackOutPlan",
      backOutPlan: r.backOutPlan,
    })),
    recordReleaseLogEntry: cmd("recordReleaseLogEntry", (r: api.RecordReleaseLogEntryRequest) => ({
      kind: "recordLogEntry",
      entryId: randomUUID(),
      entryKind: r.kind,
      text: r.text,
    })),
    recordPostImplementationReview: cmd(
      "recordPostImplementationReview",
      (r: api.RecordPostImplementationReviewRequest) => ({
        kind: "recordReview",
        outcome: r.outcome,
        lessonsLearned: r.lessonsLearned,
        followUpActions: r.followUpActions,
      }),
    ),
  };
}
