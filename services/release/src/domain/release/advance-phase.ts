import { create } from "@bufbuild/protobuf";
import type { DecisionContext } from "@rdm/command-handler";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { requireGate } from "./gate.js";
import { dueAt, nextPhase, phaseDefinition, phaseName, refuse, requireActive, templateTasks } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function advancePhase(
  command: ReleaseCommandOf<"advancePhase">,
  state: ReleaseState,
  ctx: DecisionContext,
): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release, model } = requireActive(state);
  if (command.fromPhase !== ReleasePhase.UNSPECIFIED && command.fromPhase !== release.phase)
    refuse("phase.expected", `release is in ${phaseName(release.phase)}, not ${phaseName(command.fromPhase)}`);
  const to = nextPhase(model, release.phase);
  if (to === undefined) return refuse("phase.last", "the release is in its last phase");
  if (to === ReleasePhase.CLOSED)
    refuse("phase.close_with_review", "the last step is CloseRelease, after the post-implementation review");
  requireGate(state, command.changes);
  const entry = release.phaseEntry + 1;
  const due = dueAt(phaseDefinition(model, to), ctx.now);
  const events: ReleaseEvent[] = [];
  if (release.phase === ReleasePhase.BUILD_AND_TEST && !release.packageFrozen)
    events.push(create(ev.ReleasePackageFrozenSchema, { releaseId, package: release.package }));
  events.push(
    create(ev.ReleasePhaseAdvancedSchema, {
      releaseId,
      fromPhase: release.phase,
      toPhase: to,
      phaseEntry: entry,
      ...(due ? { phaseDueAt: due } : {}),
    }),
    ...templateTasks(releaseId, model, to, entry, ctx),
  );
  return events;
}
