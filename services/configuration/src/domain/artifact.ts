import { create } from "@bufbuild/protobuf";
import {
  type Artifact,
  type ArtifactDependency,
  ArtifactSchema,
  ArtifactStatus,
  IntegrityStatus,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import {
  type ArtifactQuarantined,
  ArtifactQuarantinedSchema,
  type ArtifactRegistered,
  ArtifactRegisteredSchema,
  type ArtifactRetired,
  ArtifactRetiredSchema,
  type ArtifactVerified,
  ArtifactVerifiedSchema,
} from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import semver from "semver";
import { configurationRuleViolation } from "./rule-violation.js";

export type ArtifactEvent = ArtifactRegistered | ArtifactVerified | ArtifactQuarantined | ArtifactRetired;

export interface ArtifactState {
  artifact: Artifact | undefined;
}

export const initialState = (): ArtifactState => ({ artifact: undefined });

/**
 * Decided against the state of the artifact already registered under the same name and
 * version (if any): the Definitive Media Library never holds two contents for one version.
 */
export interface RegisterArtifact {
  kind: "registerArtifact";
  artifactId: string;
  name: string;
  version: string;
  sha256: string;
  sizeBytes: bigint;
  mediaUri: string;
  dependencies: ArtifactDependency[];
}

export interface VerifyArtifact {
  kind: "verifyArtifact";
  actualSha256: string;
  /** Only known when the service hashed streamed content itself. */
  actualSizeBytes: bigint | undefined;
  method: "bytes" | "digest";
}

export interface QuarantineArtifact {
  kind: "quarantineArtifact";
  reason: string;
}

export interface RetireArtifact {
  kind: "retireArtifact";
  reason: string;
}

export type ArtifactCommand = RegisterArtifact | VerifyArtifact | QuarantineArtifact | RetireArtifact;

function existing(state: ArtifactState): Artifact {
  if (!state.artifact) throw configurationRuleViolation("NOT_FOUND", "artifact.exists", "artifact not found");
  return state.artifact;
}

function checkRegistration(command: RegisterArtifact): void {
  // SemVer 2.0 as written, build metadata included (semver.valid drops it, and takes a "v" prefix).
  const parsed = semver.parse(command.version);
  const written = parsed && `${parsed.version}${parsed.build.length ? `+${parsed.build.join(".")}` : ""}`;
  if (written !== command.version) {
    throw configurationRuleViolation(
      "INVALID_ARGUMENT",
      "artifact.semver_version",
      `version "${command.version}" is not a semantic version (e.g. 1.4.2, 2.0.0-rc.1, 1.0.0+build.5)`,
      "version",
    );
  }
  const seen = new Set<string>();
  for (const dependency of command.dependencies) {
    if (!dependency.name || semver.validRange(dependency.versionRange) === null) {
      throw configurationRuleViolation(
        "INVALID_ARGUMENT",
        "artifact.dependency_range",
        `dependency "${dependency.name}" has no valid semver range ("${dependency.versionRange}")`,
        "dependencies",
      );
    }
    if (dependency.name === command.name) {
      throw configurationRuleViolation(
        "INVALID_ARGUMENT",
        "artifact.no_self_dependency",
        `artifact ${command.name} cannot depend on itself`,
        "dependencies",
      );
    }
    if (seen.has(dependency.name)) {
      throw configurationRuleViolation(
        "INVALID_ARGUMENT",
        "artifact.unique_dependency",
        `dependency "${dependency.name}" is declared twice`,
        "dependencies",
      );
    }
    seen.add(dependency.name);
  }
}

/** What a registration declares differently from the recorded one, or undefined. */
function registrationDifference(registered: Artifact, command: RegisterArtifact): string | undefined {
  if (registered.sha256 !== command.sha256) return `sha256 (${registered.sha256})`;
  if (registered.sizeBytes !== command.sizeBytes) return `size (${registered.sizeBytes} bytes)`;
  const dependencies = (list: { name: string; versionRange: string }[]) =>
    list
      .map((d) => `${d.name}@${d.versionRange}`)
      .sort()
      .join(",");
  if (dependencies(registered.dependencies) !== dependencies(command.dependencies)) return "dependency list";
  return undefined;
}

function register(command: RegisterArtifact, state: ArtifactState): ArtifactEvent[] {
  checkRegistration(command);
  const registered = state.artifact;
  if (registered) {
    // The same registration again: idempotent. Other content, size or dependencies under the
    // same version: refused, not dropped.
    const differs = registrationDifference(registered, command);
    if (!differs) return [];
    throw configurationRuleViolation(
      "ALREADY_EXISTS",
      "dml.immutable_version",
      `${command.name}@${command.version} is already registered with another ${differs}; a version never changes, register a new version`,
      registered.artifactId,
    );
  }
  const { kind: _, ...fields } = command;
  return [create(ArtifactRegisteredSchema, fields)];
}

export function decide(command: ArtifactCommand, state: ArtifactState): ArtifactEvent[] {
  switch (command.kind) {
    case "registerArtifact":
      return register(command, state);
    case "verifyArtifact": {
      const artifact = existing(state);
      // A retired artifact is out of use for good: a mismatch must not turn it into a quarantined one.
      if (artifact.status === ArtifactStatus.RETIRED) {
        throw configurationRuleViolation(
          "FAILED_PRECONDITION",
          "artifact.retired_is_final",
          `artifact ${artifact.name}@${artifact.version} is retired; it is not verified any more`,
          artifact.artifactId,
        );
      }
      const digestMatches = artifact.sha256 === command.actualSha256;
      // A size of 0 was not given at registration: nothing to compare with.
      const sizeMatches =
        command.actualSizeBytes === undefined ||
        artifact.sizeBytes === 0n ||
        command.actualSizeBytes === artifact.sizeBytes;
      if (digestMatches && sizeMatches) {
        return [
          create(ArtifactVerifiedSchema, {
            artifactId: artifact.artifactId,
            sha256: command.actualSha256,
            method: command.method,
          }),
        ];
      }
      const reason = digestMatches
        ? `integrity check failed: size ${command.actualSizeBytes} differs from the recorded ${artifact.sizeBytes}`
        : `integrity check failed: sha256 ${command.actualSha256} differs from the recorded ${artifact.sha256}`;
      return [
        create(ArtifactQuarantinedSchema, {
          artifactId: artifact.artifactId,
          reason,
          expectedSha256: artifact.sha256,
          actualSha256: command.actualSha256,
        }),
      ];
    }
    case "quarantineArtifact": {
      const artifact = existing(state);
      if (artifact.status === ArtifactStatus.QUARANTINED) return [];
      if (artifact.status === ArtifactStatus.RETIRED) {
        throw configurationRuleViolation(
          "FAILED_PRECONDITION",
          "artifact.retired_is_final",
          `artifact ${artifact.name}@${artifact.version} is retired`,
          artifact.artifactId,
        );
      }
      return [
        create(ArtifactQuarantinedSchema, {
          artifactId: artifact.artifactId,
          reason: command.reason,
          expectedSha256: artifact.sha256,
        }),
      ];
    }
    case "retireArtifact": {
      const artifact = existing(state);
      if (artifact.status === ArtifactStatus.RETIRED) return [];
      return [create(ArtifactRetiredSchema, { artifactId: artifact.artifactId, reason: command.reason })];
    }
  }
}

export function evolve(state: ArtifactState, event: ArtifactEvent): ArtifactState {
  const version = event.metadata?.streamVersion;
  switch (event.$typeName) {
    case "rdm.configuration.v1.ArtifactRegistered": {
      const { metadata, $typeName: _, ...fields } = event;
      return {
        artifact: create(ArtifactSchema, {
          ...fields,
          status: ArtifactStatus.ACTIVE,
          integrity: IntegrityStatus.UNVERIFIED,
          registeredBy: metadata?.actor ?? "",
          ...(metadata?.occurredAt ? { registeredAt: metadata.occurredAt } : {}),
          versionNumber: version ?? 1n,
        }),
      };
    }
    case "rdm.configuration.v1.ArtifactVerified": {
      if (!state.artifact) return state;
      return {
        artifact: {
          ...state.artifact,
          integrity: IntegrityStatus.VERIFIED,
          ...(event.metadata?.occurredAt ? { lastVerifiedAt: event.metadata.occurredAt } : {}),
          versionNumber: version ?? state.artifact.versionNumber + 1n,
        },
      };
    }
    case "rdm.configuration.v1.ArtifactQuarantined": {
      if (!state.artifact) return state;
      const mismatch = event.actualSha256 !== "";
      return {
        artifact: {
          ...state.artifact,
          status:
            state.artifact.status === ArtifactStatus.RETIRED ? ArtifactStatus.RETIRED : ArtifactStatus.QUARANTINED,
          integrity: mismatch ? IntegrityStatus.MISMATCH : state.artifact.integrity,
          ...(mismatch && event.metadata?.occurredAt ? { lastVerifiedAt: event.metadata.occurredAt } : {}),
          statusReason: event.reason,
          versionNumber: version ?? state.artifact.versionNumber + 1n,
        },
      };
    }
    case "rdm.configuration.v1.ArtifactRetired": {
      if (!state.artifact) return state;
      return {
        artifact: {
          ...state.artifact,
          status: ArtifactStatus.RETIRED,
          statusReason: event.reason,
          versionNumber: version ?? state.artifact.versionNumber + 1n,
        },
      };
    }
    default:
      // Not an artifact's event (a stream of another kind): nothing to apply.
      return state;
  }
}

export const fold = (events: ArtifactEvent[], state = initialState()): ArtifactState => events.reduce(evolve, state);
