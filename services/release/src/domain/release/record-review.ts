import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { nextPhase, phaseName, refuse, requireActive, ts } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function recordReview(
  command: ReleaseCommandOf<"recordReview">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release, model } = requireActive(state);
  if (nextPhase(model, release.phase) !== ReleasePhase.CLOSED)
    refuse(
      "review.in_review_phase",
      `the review is recorded in the phase before CLOSED, not ${phaseName(release.phase)}`,
    );
  return [
    create(ev.ReleaseReviewRecordedSchema, {
      releaseId,
      review: {
        outcome: command.outcome,
        lessonsLearned: command.lessonsLearned,
        followUpActions: command.followUpActions,
        reviewedBy: ctx.actor,
        reviewedAt: ts(ctx.now),
      },
    }),
  ];
}
