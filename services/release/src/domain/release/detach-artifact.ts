import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { refuse, requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function detachArtifact(command: ReleaseCommandOf<"detachArtifact">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  if (release.packageFrozen) refuse("package.frozen", "the package is frozen since the release left BUILD_AND_TEST");
  if (!release.package.some((a) => a.artifactId === command.artifactId))
    refuse(
      "package.artifact_attached",
      `artifact ${command.artifactId} is not attached`,
      "NOT_FOUND",
      command.artifactId,
    );
  return [create(ev.ReleaseArtifactDetachedSchema, { releaseId, artifactId: command.artifactId })];
}
