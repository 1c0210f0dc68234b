import { create } from "@bufbuild/protobuf";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  ArtifactStatus,
  CiLifecycleStatus,
  CiType,
  ConfigurationItemSchema,
  EnvironmentHealth,
  IntegrityStatus,
  RelationshipType,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { ConsistencyProblemKind } from "@rdm/proto/gen/rdm/configuration/v1/configuration_service_pb.js";
import { DeploymentOutcome } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import { deciderSpec } from "@rdm/testkit";
import {
  type ArtifactCommand,
  type ArtifactEvent,
  type ArtifactState,
  decide as decideArtifact,
  evolve as evolveArtifact,
  fold as foldArtifact,
  initialState as initialArtifactState,
  type RegisterArtifact,
} from "../src/domain/artifact.js";
import { decide as decideBaseline, fold as foldBaseline, type RecordDeployment } from "../src/domain/baseline.js";
import {
  type ConfigurationItemCommand,
  type ConfigurationItemEvent,
  type ConfigurationItemState,
  decide as decideConfigurationItem,
  describeChange,
  evolve as evolveConfigurationItem,
  fold as foldConfigurationItem,
  initialState as initialConfigurationItemState,
  type RegisterConfigurationItem,
} from "../src/domain/configuration-item.js";
import { checkPackageConsistency } from "../src/domain/consistency.js";
import { type Edge, transitiveDependents } from "../src/domain/impact.js";
import { historyOf } from "../src/store/streams.js";

/** Stamps events as the API would, so evolve sees versions. */
function stamp<E extends { metadata?: unknown }>(events: E[], from = 1): E[] {
  return events.map((event, i) => ({
    ...event,
    metadata: create(EventMetadataSchema, { streamVersion: BigInt(from + i), actor: "alice" }),
  }));
}

const ci = deciderSpec<ConfigurationItemState, ConfigurationItemEvent, ConfigurationItemCommand>({
  decide: decideConfigurationItem,
  evolve: evolveConfigurationItem,
  initialState: initialConfigurationItemState,
}).given;

const registerDb: RegisterConfigurationItem = {
  kind: "registerConfigurationItem",
  ciId: "ci-db",
  name: "orders-db",
  type: CiType.DATABASE,
  owner: "dba",
  status: CiLifecycleStatus.UNSPECIFIED,
  attributes: { engine: "postgres" },
};
const registered = () => stamp(decideConfigurationItem(registerDb, foldConfigurationItem([])));
const target = (status = CiLifecycleStatus.LIVE) =>
  create(ConfigurationItemSchema, { ciId: "ci-host", status, type: CiType.HOST });

describe("configuration items", () => {
  test("register defaults the lifecycle status to LIVE and refuses a second registration", () => {
    const events = registered();
    expect(events[0]).toMatchObject({
      ciId: "ci-db",
      status: CiLifecycleStatus.LIVE,
      attributes: { engine: "postgres" },
    });
    ci(events).when(registerDb).thenFails("ci.unique_id");
  });

  test("update records only what changes; a no-op update records nothing", () => {
    const history = registered();
    expect(
      ci(history)
        .when({
          kind: "updateConfigurationItem",
          name: "",
          owner: "dba",
          setAttributes: { engine: "postgres" },
          removedAttributes: ["absent"],
        })
        .events(),
    ).toEqual([]);
    const [event] = ci(history)
      .when({
        kind: "updateConfigurationItem",
        name: "orders-db-2",
        owner: "",
        setAttributes: { engine: "postgres", size: "xl" },
        removedAttributes: ["engine"],
      })
      .events();
    expect(event).toMatchObject({ name: "orders-db-2", setAttributes: { size: "xl" }, removedAttributes: ["engine"] });
    const item = foldConfigurationItem([...history, ...stamp([event as ConfigurationItemEvent], 2)]).item;
    expect(item).toMatchObject({ name: "orders-db-2", attributes: { size: "xl" }, version: 2n, owner: "dba" });
  });

  test("commands on an unknown item are NOT_FOUND", () => {
    ci([]).when({ kind: "changeConfigurationItemStatus", status: CiLifecycleStatus.RETIRED }).thenFails("ci.exists");
  });

  test("a retired item is final", () => {
    const history = [
      ...registered(),
      ...stamp(
        decideConfigurationItem(
          { kind: "changeConfigurationItemStatus", status: CiLifecycleStatus.RETIRED },
          foldConfigurationItem(registered()),
        ),
        2,
      ),
    ];
    expect(foldConfigurationItem(history).item?.status).toBe(CiLifecycleStatus.RETIRED);
    ci(history)
      .when({ kind: "changeConfigurationItemStatus", status: CiLifecycleStatus.LIVE })
      .thenFails("ci.retired_is_final");
    ci(history)
      .when({
        kind: "updateConfigurationItem",
        name: "x",
        owner: "",
        setAttributes: {},
        removedAttributes: [],
      })
      .thenFails("ci.retired_is_read_only");
    ci(history)
      .when({
        kind: "addRelationship",
        type: RelationshipType.RUNS_ON,
        target: target(),
        targetCiId: "ci-host",
      })
      .thenFails("relationship.no_retired_items");
  });

  test("relationships: added once, no self reference, target must exist, removal of an absent one refused", () => {
    const history = registered();
    const add = {
      kind: "addRelationship",
      type: RelationshipType.RUNS_ON,
      target: target(),
      targetCiId: "ci-host",
    } as const;
    const added = stamp(ci(history).when(add).events(), 2);
    expect(added[0]?.$typeName).toBe("rdm.configuration.v1.RelationshipAdded");
    const withRelationship = [...history, ...added];
    expect(foldConfigurationItem(withRelationship).item?.relationships).toHaveLength(1);
    expect(ci(withRelationship).when(add).events()).toEqual([]);
    ci(history)
      .when({ ...add, targetCiId: "ci-db", target: target() })
      .thenFails("relationship.no_self_reference");
    ci(history)
      .when({ ...add, target: undefined })
      .thenFails("relationship.target_exists");
    ci(history)
      .when({ kind: "removeRelationship", type: RelationshipType.RUNS_ON, targetCiId: "ci-host" })
      .thenFails("relationship.exists");
    const removed = stamp(
      ci(withRelationship)
        .when({
          kind: "removeRelationship",
          type: RelationshipType.RUNS_ON,
          targetCiId: "ci-host",
        })
        .events(),
      3,
    );
    const after = foldConfigurationItem([...withRelationship, ...removed]).item;
    expect(after?.relationships).toEqual([]);
    expect(after?.version).toBe(3n);
    expect(removed.map(describeChange)).toEqual(["RUNS_ON ci-host removed"]);
  });
});

const sha = (c: string) => c.repeat(64);
const registerArtifact: RegisterArtifact = {
  kind: "registerArtifact",
  artifactId: "art-1",
  name: "orders-api",
  version: "1.4.2",
  sha256: sha("a"),
  sizeBytes: 10n,
  mediaUri: "s3://dml/orders-api-1.4.2.tgz",
  dependencies: [
    { $typeName: "rdm.configuration.v1.ArtifactDependency", name: "orders-db-schema", versionRange: "^3.1.0" },
  ],
};
const artifact = deciderSpec<ArtifactState, ArtifactEvent, ArtifactCommand>({
  decide: decideArtifact,
  evolve: evolveArtifact,
  initialState: initialArtifactState,
}).given;
const artifactRegistered = () => stamp(decideArtifact(registerArtifact, foldArtifact([])));

describe("Definitive Media Library", () => {
  test("registers an active, unverified artifact", () => {
    expect(foldArtifact(artifactRegistered()).artifact).toMatchObject({
      status: ArtifactStatus.ACTIVE,
      integrity: IntegrityStatus.UNVERIFIED,
      registeredBy: "alice",
    });
  });

  test("same name+version: same checksum is idempotent, another checksum is refused", () => {
    const history = artifactRegistered();
    expect(
      artifact(history)
        .when({ ...registerArtifact, artifactId: "art-2" })
        .events(),
    ).toEqual([]);
    artifact(history)
      .when({ ...registerArtifact, sha256: sha("b") })
      .thenFails("dml.immutable_version");
    // The same checksum with another size or dependency list is refused too, not dropped.
    artifact(history)
      .when({ ...registerArtifact, sizeBytes: 999n })
      .thenFails("dml.immutable_version");
    artifact(history)
      .when({
        ...registerArtifact,
        dependencies: [{ $typeName: "rdm.configuration.v1.ArtifactDependency", name: "x", versionRange: "^1" }],
      })
      .thenFails("dml.immutable_version");
  });

  test("a version with build metadata is a semantic version; with a v prefix it is not", () => {
    expect(
      artifact([])
        .when({ ...registerArtifact, version: "1.4.2+build.5" })
        .events(),
    ).toHaveLength(1);
    expect(
      artifact([])
        .when({ ...registerArtifact, version: "2.0.0-rc.1+sha.5114f85" })
        .events(),
    ).toHaveLength(1);
    artifact([])
      .when({ ...registerArtifact, version: "v1.4.2+build.5" })
      .thenFails("artifact.semver_version");
  });

  test("an artifact registered without a size is verified by its digest alone", () => {
    const history = stamp(decideArtifact({ ...registerArtifact, sizeBytes: 0n }, foldArtifact([])));
    const [verified] = artifact(history)
      .when({ kind: "verifyArtifact", actualSha256: sha("a"), actualSizeBytes: 29n, method: "bytes" })
      .events();
    expect(verified?.$typeName).toBe("rdm.configuration.v1.ArtifactVerified");
  });

  test("refuses a non-semver version and an invalid, duplicated or self dependency", () => {
    artifact([])
      .when({ ...registerArtifact, version: "1.4" })
      .thenFails("artifact.semver_version");
    artifact([])
      .when({ ...registerArtifact, version: "v1.4.2" })
      .thenFails("artifact.semver_version");
    const dep = (name: string, versionRange: string) => ({
      $typeName: "rdm.configuration.v1.ArtifactDependency" as const,
      name,
      versionRange,
    });
    artifact([])
      .when({ ...registerArtifact, dependencies: [dep("x", "not a range")] })
      .thenFails("artifact.dependency_range");
    artifact([])
      .when({ ...registerArtifact, dependencies: [dep("x", "^1"), dep("x", "^2")] })
      .thenFails("artifact.unique_dependency");
    artifact([])
      .when({ ...registerArtifact, dependencies: [dep("orders-api", "^1")] })
      .thenFails("artifact.no_self_dependency");
  });

  test("verification: a match verifies, a digest or size mismatch quarantines", () => {
    const history = artifactRegistered();
    const ok = stamp(
      artifact(history)
        .when({
          kind: "verifyArtifact",
          actualSha256: sha("a"),
          actualSizeBytes: 10n,
          method: "bytes",
        })
        .events(),
      2,
    );
    expect(foldArtifact([...history, ...ok]).artifact?.integrity).toBe(IntegrityStatus.VERIFIED);

    const bad = stamp(
      artifact(history)
        .when({
          kind: "verifyArtifact",
          actualSha256: sha("c"),
          actualSizeBytes: undefined,
          method: "digest",
        })
        .events(),
      2,
    );
    expect(bad[0]?.$typeName).toBe("rdm.configuration.v1.ArtifactQuarantined");
    expect(foldArtifact([...history, ...bad]).artifact).toMatchObject({
      status: ArtifactStatus.QUARANTINED,
      integrity: IntegrityStatus.MISMATCH,
    });

    const shortRead = artifact(history)
      .when({
        kind: "verifyArtifact",
        actualSha256: sha("a"),
        actualSizeBytes: 9n,
        method: "bytes",
      })
      .events();
    expect(shortRead[0]).toMatchObject({
      $typeName: "rdm.configuration.v1.ArtifactQuarantined",
      reason: expect.stringContaining("size"),
    });
  });

  test("manual quarantine and retirement; retired is final", () => {
    const history = artifactRegistered();
    const quarantined = stamp(artifact(history).when({ kind: "quarantineArtifact", reason: "CVE-2026-1" }).events(), 2);
    expect(foldArtifact([...history, ...quarantined]).artifact).toMatchObject({
      status: ArtifactStatus.QUARANTINED,
      integrity: IntegrityStatus.UNVERIFIED,
      statusReason: "CVE-2026-1",
    });
    expect(
      artifact([...history, ...quarantined])
        .when({ kind: "quarantineArtifact", reason: "again" })
        .events(),
    ).toEqual([]);
    const retired = stamp(artifact(history).when({ kind: "retireArtifact", reason: "superseded" }).events(), 2);
    expect(foldArtifact([...history, ...retired]).artifact?.status).toBe(ArtifactStatus.RETIRED);
    expect(
      artifact([...history, ...retired])
        .when({ kind: "retireArtifact", reason: "" })
        .events(),
    ).toEqual([]);
    artifact([...history, ...retired])
      .when({ kind: "quarantineArtifact", reason: "x" })
      .thenFails("artifact.retired_is_final");
    // Nor does a verification reopen it (a mismatch would quarantine it over its retirement).
    artifact([...history, ...retired])
      .when({
        kind: "verifyArtifact",
        actualSha256: sha("b"),
        actualSizeBytes: undefined,
        method: "digest",
      })
      .thenFails("artifact.retired_is_final");
    artifact([]).when({ kind: "retireArtifact", reason: "" }).thenFails("artifact.exists");
  });
});

describe("streams of another kind", () => {
  // Ids are bare stream ids: an artifact's id may be passed where a CI's is expected, and back.
  test("an artifact's events make no configuration item, a CI's events no artifact", () => {
    const artifactHistory = artifactRegistered() as unknown as ConfigurationItemEvent[];
    expect(foldConfigurationItem(artifactHistory).item).toBeUndefined();
    ci(artifactHistory)
      .when({ kind: "changeConfigurationItemStatus", status: CiLifecycleStatus.LIVE })
      .thenFails("ci.exists");
    const itemHistory = registered() as unknown as ArtifactEvent[];
    expect(foldArtifact(itemHistory).artifact).toBeUndefined();
    artifact(itemHistory).when({ kind: "quarantineArtifact", reason: "x" }).thenFails("artifact.exists");
  });
});

describe("package consistency", () => {
  const art = (
    id: string,
    name: string,
    version: string,
    deps: Record<string, string> = {},
    status = ArtifactStatus.ACTIVE,
  ) => {
    const dependencies = Object.entries(deps).map(([depName, versionRange]) => ({
      $typeName: "rdm.configuration.v1.ArtifactDependency" as const,
      name: depName,
      versionRange,
    }));
    const events = decideArtifact(
      { ...registerArtifact, artifactId: id, name, version, dependencies },
      foldArtifact([]),
    );
    const registeredArtifact = foldArtifact(stamp(events)).artifact;
    if (!registeredArtifact) throw new Error("not registered");
    return { ...registeredArtifact, status };
  };
  const entry = (artifactName: string, artifactVersion: string) => ({
    $typeName: "rdm.configuration.v1.BaselineEntry" as const,
    ciId: "ci-1",
    artifactName,
    artifactVersion,
    artifactId: "",
    deploymentId: "d",
  });

  test("satisfied inside the package", () => {
    const result = checkPackageConsistency([art("a", "api", "2.0.0", { lib: "^1.2.0" }), art("b", "lib", "1.3.0")], []);
    expect(result.consistent).toBe(true);
    expect(result.satisfied[0]).toMatchObject({ satisfiedBy: "package", satisfiedByVersion: "1.3.0" });
  });

  test("missing dependency and version out of range", () => {
    const result = checkPackageConsistency(
      [art("a", "api", "2.0.0", { lib: "^1.2.0", cache: ">=4" }), art("b", "lib", "2.0.0")],
      [entry("cache", "3.9.0")],
    );
    expect(result.consistent).toBe(false);
    expect(result.problems.map((p) => [p.kind, p.dependency?.name, p.foundVersions])).toEqual([
      [ConsistencyProblemKind.VERSION_OUT_OF_RANGE, "lib", ["2.0.0"]],
      [ConsistencyProblemKind.VERSION_OUT_OF_RANGE, "cache", ["3.9.0"]],
    ]);
    const missing = checkPackageConsistency([art("a", "api", "2.0.0", { queue: "~1.0.0" })], []);
    expect(missing.problems[0]).toMatchObject({ kind: ConsistencyProblemKind.MISSING_DEPENDENCY, artifactId: "a" });
  });

  test("satisfied by the baseline, but the package's own version wins over the baseline", () => {
    const byBaseline = checkPackageConsistency([art("a", "api", "2.0.0", { lib: "^1.2.0" })], [entry("lib", "1.9.9")]);
    expect(byBaseline.satisfied[0]).toMatchObject({ satisfiedBy: "baseline", satisfiedByVersion: "1.9.9" });
    const replaced = checkPackageConsistency(
      [art("a", "api", "2.0.0", { lib: "^1.2.0" }), art("b", "lib", "2.0.0")],
      [entry("lib", "1.9.9")],
    );
    expect(replaced.problems[0]).toMatchObject({ kind: ConsistencyProblemKind.VERSION_OUT_OF_RANGE });
  });

  test("baseline versions that are not semver (CalVer) are reported, not a crash", () => {
    const baseline = [entry("lib", "2024.01.15"), { ...entry("lib", "1.4.0"), ciId: "ci-2" }];
    const result = checkPackageConsistency(
      [art("a", "api", "2.0.0", { lib: "^1.2.0" }), art("b", "web", "1.0.0", { lib: ">=2024.0.0" })],
      baseline,
    );
    expect(result.satisfied).toEqual([
      expect.objectContaining({ artifactId: "a", satisfiedBy: "baseline", satisfiedByVersion: "1.4.0" }),
    ]);
    expect(result.problems).toEqual([
      expect.objectContaining({
        kind: ConsistencyProblemKind.VERSION_OUT_OF_RANGE,
        artifactId: "b",
        // Semver first, in order; what is not semver after it.
        foundVersions: ["1.4.0", "2024.01.15"],
        description: expect.stringContaining("not a semantic version, so no range matches it: 2024.01.15"),
      }),
    ]);
  });

  test("quarantined artifacts and two versions of one name are problems", () => {
    const result = checkPackageConsistency(
      [art("a", "api", "2.0.0", {}, ArtifactStatus.QUARANTINED), art("b", "lib", "1.0.0"), art("c", "lib", "1.1.0")],
      [],
    );
    expect(result.problems.map((p) => p.kind).sort()).toEqual(
      [ConsistencyProblemKind.ARTIFACT_NOT_DEPLOYABLE, ConsistencyProblemKind.CONFLICTING_VERSIONS].sort(),
    );
  });
});

describe("baselines", () => {
  const record = (overrides: Partial<RecordDeployment>): RecordDeployment => ({
    kind: "recordDeployment",
    environment: "prod",
    deploymentId: "dep-1",
    releaseId: "rel-1",
    outcome: DeploymentOutcome.SUCCEEDED,
    entries: [
      {
        $typeName: "rdm.configuration.v1.BaselineEntry",
        ciId: "host-1",
        artifactName: "api",
        artifactVersion: "1.0.0",
        artifactId: "a1",
        deploymentId: "",
      },
    ],
    artifacts: [],
    reason: "",
    restoredArtifactNames: [],
    restoredTargetCiIds: [],
    sourceEventId: "e1",
    environmentSequence: 0n,
    ...overrides,
  });

  test("success moves the baseline and last known good; failure degrades; rollback restores health", () => {
    let events = stamp(decideBaseline(record({}), foldBaseline([])));
    let state = foldBaseline(events);
    expect(state.baseline?.lastKnownGoodDeploymentId).toBe("dep-1");
    expect(state.baseline?.entries[0]).toMatchObject({ artifactVersion: "1.0.0", deploymentId: "dep-1" });

    const failed = record({
      deploymentId: "dep-2",
      outcome: DeploymentOutcome.FAILED,
      sourceEventId: "e2",
      entries: [{ ...(record({}).entries[0] as RecordDeployment["entries"][0]), artifactVersion: "1.1.0" }],
    });
    events = [...events, ...stamp(decideBaseline(failed, state), 2)];
    state = foldBaseline(events);
    expect(state.baseline).toMatchObject({ health: EnvironmentHealth.DEGRADED, lastKnownGoodDeploymentId: "dep-1" });
    expect(state.baseline?.entries[0]?.artifactVersion).toBe("1.1.0");
    expect(state.baseline?.lastKnownGood[0]?.artifactVersion).toBe("1.0.0");

    const rolledBack = record({ deploymentId: "dep-2", outcome: DeploymentOutcome.ROLLED_BACK, sourceEventId: "e3" });
    events = [...events, ...stamp(decideBaseline(rolledBack, state), 3)];
    state = foldBaseline(events);
    expect(state.baseline).toMatchObject({
      health: EnvironmentHealth.HEALTHY,
      lastKnownGoodDeploymentId: "dep-1",
      version: 3n,
    });
    expect(state.baseline?.entries[0]?.artifactVersion).toBe("1.0.0");
  });

  test("a deployment event applied twice changes nothing", () => {
    const state = foldBaseline(stamp(decideBaseline(record({}), foldBaseline([]))));
    expect(decideBaseline(record({}), state)).toEqual([]);
  });
});

describe("impact analysis", () => {
  // edges source -> target; impact travels target -> source
  const graph = (edges: [string, string][]) => async (targets: string[]) =>
    edges
      .filter(([, t]) => targets.includes(t))
      .map(([s, t]): Edge => ({ sourceCiId: s, targetCiId: t, type: RelationshipType.DEPENDS_ON }));

  test("cycle-safe, shortest depth and path", async () => {
    const edges: [string, string][] = [
      ["b", "a"],
      ["c", "b"],
      ["a", "c"], // cycle a <- b <- c <- a
      ["d", "c"],
      ["d", "a"], // d also directly on a: depth 1
      ["e", "d"],
    ];
    const reached = await transitiveDependents("a", graph(edges), { maxDepth: 0 });
    const byId = Object.fromEntries(reached.map((r) => [r.ciId, r]));
    expect(Object.keys(byId).sort()).toEqual(["b", "c", "d", "e"]);
    expect(byId.d).toMatchObject({ depth: 1, path: ["a", "d"] });
    expect(byId.c).toMatchObject({ depth: 2, path: ["a", "b", "c"] });
    expect(byId.e).toMatchObject({ depth: 2, path: ["a", "d", "e"] });
  });

  test("a failure spreads against DEPENDS_ON/RUNS_ON/CONNECTS_TO but along PART_OF (to the whole)", async () => {
    const edges: Edge[] = [
      { sourceCiId: "api", type: RelationshipType.RUNS_ON, targetCiId: "host" },
      { sourceCiId: "api", type: RelationshipType.PART_OF, targetCiId: "checkout" },
      { sourceCiId: "host", type: RelationshipType.PART_OF, targetCiId: "datacenter" },
    ];
    const lookup = async (causes: string[]) =>
      edges.filter((e) =>
        e.type === RelationshipType.PART_OF ? causes.includes(e.sourceCiId) : causes.includes(e.targetCiId),
      );
    const fromHost = await transitiveDependents("host", lookup, { maxDepth: 0 });
    expect(fromHost.map((r) => [r.ciId, r.depth, r.path])).toEqual([
      ["api", 1, ["host", "api"]],
      ["datacenter", 1, ["host", "datacenter"]],
      ["checkout", 2, ["host", "api", "checkout"]],
    ]);
    // The whole failing does not take its parts down.
    expect(await transitiveDependents("checkout", lookup, { maxDepth: 0 })).toEqual([]);
  });

  test("equally short paths: through the smallest parent id, then the smallest relationship type", async () => {
    // x is two hops from root through both p and q, and q reaches it twice (two relationship types).
    const edges: Edge[] = [
      { sourceCiId: "q", type: RelationshipType.DEPENDS_ON, targetCiId: "root" },
      { sourceCiId: "p", type: RelationshipType.DEPENDS_ON, targetCiId: "root" },
      { sourceCiId: "x", type: RelationshipType.CONNECTS_TO, targetCiId: "q" },
      { sourceCiId: "x", type: RelationshipType.RUNS_ON, targetCiId: "q" },
      { sourceCiId: "y", type: RelationshipType.CONNECTS_TO, targetCiId: "q" },
      { sourceCiId: "y", type: RelationshipType.RUNS_ON, targetCiId: "q" },
      { sourceCiId: "x", type: RelationshipType.CONNECTS_TO, targetCiId: "p" },
    ];
    const lookup = (order: Edge[]) => async (causes: string[]) => order.filter((e) => causes.includes(e.targetCiId));
    const walk = async (order: Edge[]) =>
      (await transitiveDependents("root", lookup(order), { maxDepth: 0 })).map((r) => [
        r.ciId,
        r.path,
        r.pathRelationships,
      ]);
    const expected = [
      ["p", ["root", "p"], [RelationshipType.DEPENDS_ON]],
      ["q", ["root", "q"], [RelationshipType.DEPENDS_ON]],
      ["x", ["root", "p", "x"], [RelationshipType.DEPENDS_ON, RelationshipType.CONNECTS_TO]],
      ["y", ["root", "q", "y"], [RelationshipType.DEPENDS_ON, RelationshipType.RUNS_ON]],
    ];
    // Whatever order the store returns the edges in.
    expect(await walk(edges)).toEqual(expected);
    expect(await walk([...edges].reverse())).toEqual(expected);
  });

  test("max depth bounds the walk", async () => {
    const reached = await transitiveDependents(
      "a",
      graph([
        ["b", "a"],
        ["c", "b"],
      ]),
      { maxDepth: 1 },
    );
    expect(reached.map((r) => r.ciId)).toEqual(["b"]);
  });
});

test("every command folds its stream with the one history aggregate, so the command handler keeps its state", () => {
  // The handler keeps a stream's state per aggregate object: one made per command would never be found again.
  expect(historyOf<ConfigurationItemEvent>()).toBe(historyOf<ArtifactEvent>());
});
