import { create } from "@bufbuild/protobuf";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { refuse, requireActive } from "./rules.js";
import type { ReleaseCommandOf, ReleaseEvent, ReleaseState } from "./types.js";

export function attachArtifact(command: ReleaseCommandOf<"attachArtifact">, state: ReleaseState): ReleaseEvent[] {
  const releaseId = state.release?.releaseId ?? "";
  const { release } = requireActive(state);
  if (release.packageFrozen) refuse("package.frozen", "the package is frozen since the release left BUILD_AND_TEST");
  if (release.package.some((a) => a.artifactId === command.artifact.artifactId))
    refuse(
      "package.artifact_unique",
      `artifact ${command.artifact.artifactId} is already attached`,
      "ALREADY_EXISTS",
      command.artifact.artifactId,
    );
  if (release.package.some((a) => a.name === command.artifact.name))
    refuse("package.one_version_per_artifact", `another version of ${command.artifact.name} is already attached`);
  return [create(ev.ReleaseArtifactAttachedSchema, { releaseId, artifact: command.artifact })];
}
