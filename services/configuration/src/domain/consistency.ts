import { create } from "@bufbuild/protobuf";
import {
  type Artifact,
  ArtifactStatus,
  type BaselineEntry,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  type CheckPackageConsistencyResponse,
  CheckPackageConsistencyResponseSchema,
  type ConsistencyProblem,
  ConsistencyProblemKind,
  ConsistencyProblemSchema,
  type SatisfiedDependency,
  SatisfiedDependencySchema,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import semver from "semver";

/**
 * Semantic versions in order, then what is not one (a baseline's versions come from deployment
 * events, unchecked: CalVer such as 2024.01.15 is possible), which no range can satisfy.
 */
function byVersion(a: string, b: string): number {
  const [validA, validB] = [semver.valid(a), semver.valid(b)];
  if (validA && validB) return semver.compare(validA, validB);
  if (validA || validB) return validA ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Every unsatisfied declared dependency of a package (a set of artifacts) deployed into an
 * environment. A dependency is satisfied by an artifact of the package with that name and a
 * version in range; failing that, by what the environment's baseline says runs there — unless
 * the package replaces that name, since the package's version is what will run afterwards.
 */
export function checkPackageConsistency(
  artifacts: Artifact[],
  baseline: BaselineEntry[],
): CheckPackageConsistencyResponse {
  const problems: ConsistencyProblem[] = [];
  const satisfied: SatisfiedDependency[] = [];
  const inPackage = new Map<string, Artifact[]>();
  for (const artifact of artifacts) inPackage.set(artifact.name, [...(inPackage.get(artifact.name) ?? []), artifact]);
  const deployed = new Map<string, Set<string>>();
  for (const entry of baseline) {
    deployed.set(entry.artifactName, (deployed.get(entry.artifactName) ?? new Set()).add(entry.artifactVersion));
  }

  for (const [name, versions] of inPackage) {
    if (versions.length > 1) {
      const first = versions[0] as Artifact;
      problems.push(
        create(ConsistencyProblemSchema, {
          kind: ConsistencyProblemKind.CONFLICTING_VERSIONS,
          artifactId: first.artifactId,
          artifactName: name,
          artifactVersion: first.version,
          foundVersions: versions.map((a) => a.version),
          description: `the package holds ${name} in ${versions.length} versions: ${versions.map((a) => a.version).join(", ")}`,
        }),
      );
    }
  }

  for (const artifact of artifacts) {
    const subject = { artifactId: artifact.artifactId, artifactName: artifact.name, artifactVersion: artifact.version };
    if (artifact.status !== ArtifactStatus.ACTIVE) {
      problems.push(
        create(ConsistencyProblemSchema, {
          kind: ConsistencyProblemKind.ARTIFACT_NOT_DEPLOYABLE,
          ...subject,
          description: `${artifact.name}@${artifact.version} is ${ArtifactStatus[artifact.status].toLowerCase()}${artifact.statusReason ? `: ${artifact.statusReason}` : ""}`,
        }),
      );
    }
    for (const dependency of artifact.dependencies) {
      const range = dependency.versionRange;
      const packaged = inPackage.get(dependency.name)?.map((a) => a.version);
      const candidates = packaged ?? [...(deployed.get(dependency.name) ?? [])];
      const source = packaged ? "package" : "baseline";
      const match = semver.maxSatisfying(candidates, range);
      if (match) {
        satisfied.push(
          create(SatisfiedDependencySchema, {
            artifactId: artifact.artifactId,
            dependency,
            satisfiedByVersion: match,
            satisfiedBy: source,
          }),
        );
        continue;
      }
      problems.push(unsatisfiedDependency(artifact, dependency, candidates, source));
    }
  }
  return create(CheckPackageConsistencyResponseSchema, { consistent: problems.length === 0, problems, satisfied });
}

/** The problem of a dependency no candidate version satisfies (none found, or none in range). */
function unsatisfiedDependency(
  artifact: Artifact,
  dependency: Artifact["dependencies"][number],
  candidates: string[],
  source: "package" | "baseline",
) {
  const range = dependency.versionRange;
  const subject = { artifactId: artifact.artifactId, artifactName: artifact.name, artifactVersion: artifact.version };
  const kind =
    candidates.length === 0 ? ConsistencyProblemKind.MISSING_DEPENDENCY : ConsistencyProblemKind.VERSION_OUT_OF_RANGE;
  const where = source === "package" ? "in the package" : "deployed in the environment";
  const notSemver = candidates.filter((version) => !semver.valid(version));
  // Says why a version that looks in range (2024.01.15 for >=2024.0.0) does not count.
  const unrankable = notSemver.length
    ? ` (not a semantic version, so no range matches it: ${notSemver.join(", ")})`
    : "";
  return create(ConsistencyProblemSchema, {
    kind,
    ...subject,
    dependency,
    foundVersions: candidates.sort(byVersion),
    description:
      kind === ConsistencyProblemKind.MISSING_DEPENDENCY
        ? `${artifact.name}@${artifact.version} needs ${dependency.name} ${range}, which is neither in the package nor deployed in the environment`
        : `${artifact.name}@${artifact.version} needs ${dependency.name} ${range}, but ${where} there is only ${candidates.join(", ")}${unrankable}`,
  });
}
