// The environment inventory fold: outcomes in environment order whatever their arrival order,
// rollbacks that restore exactly (their artifacts' names, when they name them), and entries that keep "since" while their version stays;
// for any outcomes, the same versions as the configuration service's baseline fold.
import { create } from "@bufbuild/protobuf";
import { foldBaseline } from "@rdm/domain-kernel/configuration";
import { BaselineDeploymentRecordedSchema, DeploymentOutcome } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import fc from "fast-check";
import { foldInventory, type InventoryOutcome } from "../src/projections/deployments/inventory.js";

let arrivals = 0n;
const outcome = (
  environmentSequence: number,
  kind: InventoryOutcome["kind"],
  artifacts: [name: string, version: string, targets: string[]][],
  liveColour = "",
  restoredArtifactNames: string[] = [],
  restoredTargetCiIds: string[] = [],
): InventoryOutcome => ({
  kind,
  environmentSequence: BigInt(environmentSequence),
  arrival: ++arrivals,
  deploymentId: `dep-${environmentSequence}`,
  releaseId: `rel-${environmentSequence}`,
  occurredAt: new Date(Date.UTC(2026, 11, 1, 9, environmentSequence)),
  artifacts: artifacts.map(([name, version, targetCiIds]) => ({ artifactId: "", name, version, targetCiIds })),
  liveColour,
  restoredArtifactNames,
  restoredTargetCiIds,
});

const running = (outcomes: InventoryOutcome[]) =>
  foldInventory(outcomes).entries.map(
    (e) => `${e.targetCiId}/${e.artifactName}@${e.artifactVersion} by ${e.deploymentId}`,
  );

const api1 = outcome(1, "SUCCEEDED", [["api", "1.0.0", ["h1", "h2"]]]);
const worker = outcome(2, "SUCCEEDED", [["worker", "3.0.0", ["h3"]]]);
const api2 = outcome(3, "SUCCEEDED", [["api", "2.0.0", ["h1"]]]);

test("any arrival order gives the inventory of the environment's order", () => {
  const expected = ["h1/api@2.0.0 by dep-3", "h2/api@1.0.0 by dep-1", "h3/worker@3.0.0 by dep-2"];
  expect(running([api1, worker, api2])).toEqual(expected);
  expect(running([api2, api1, worker])).toEqual(expected);
  expect(running([worker, api2, api1])).toEqual(expected);
  expect(foldInventory([api2, api1, worker]).summary).toMatchObject({
    health: "HEALTHY",
    lastDeploymentId: "dep-3",
    lastEnvironmentSequence: 3n,
  });
});

test("a rollback restores exactly what it names; a failure before it no longer counts", () => {
  const failed = outcome(4, "FAILED", [
    ["api", "3.0.0", ["h1"]],
    ["sidecar", "0.1.0", ["h1"]],
  ]);
  const rolledBack = outcome(5, "ROLLED_BACK", [
    ["api", "2.0.0", ["h1"]],
    ["api", "1.0.0", ["h2"]],
  ]);
  expect(foldInventory([api1, api2, failed]).summary?.health).toBe("DEGRADED");
  expect(running([api1, api2, failed])).toContain("h1/sidecar@0.1.0 by dep-4");
  const { entries, summary } = foldInventory([rolledBack, failed, api1, api2, worker]);
  // The worker was not in the restored baseline, nor the failure's sidecar: removed. api on h1
  // is restored by the rollback; on h2 the failure changed nothing, so it keeps its "since"
  // and the deployment that put 1.0.0 there.
  expect(entries.map((e) => [e.targetCiId, e.artifactName, e.artifactVersion, e.deploymentId, e.via])).toEqual([
    ["h1", "api", "2.0.0", "dep-5", "ROLLED_BACK"],
    ["h2", "api", "1.0.0", "dep-1", "SUCCEEDED"],
  ]);
  expect(summary).toMatchObject({ health: "HEALTHY", lastOutcome: "ROLLED_BACK", lastDeploymentId: "dep-5" });
});

test("a rollback naming its artifacts restores those names only: other artifacts stay as they run", () => {
  const failed = outcome(4, "FAILED", [
    ["api", "3.0.0", ["h1"]],
    ["api", "3.0.0", ["h4"]],
  ]);
  const rolledBack = outcome(
    5,
    "ROLLED_BACK",
    [
      ["api", "2.0.0", ["h1"]],
      ["api", "1.0.0", ["h2"]],
    ],
    "",
    ["api"],
  );
  // The h4 the failed deployment added is removed; the worker, not its artifact, stays.
  expect(running([rolledBack, failed, api1, api2, worker])).toEqual([
    "h1/api@2.0.0 by dep-5",
    "h2/api@1.0.0 by dep-1",
    "h3/worker@3.0.0 by dep-2",
  ]);
});

test("a rollback naming its targets restores its names there only: a target it did not reach keeps them", () => {
  // h2 left the environment before the deployment: the rollback restores api on h1 and h4.
  const failed = outcome(4, "FAILED", [["api", "3.0.0", ["h1", "h4"]]]);
  const rolledBack = outcome(5, "ROLLED_BACK", [["api", "2.0.0", ["h1"]]], "", ["api"], ["h1", "h4"]);
  expect(running([rolledBack, failed, api1, api2, worker])).toEqual([
    "h1/api@2.0.0 by dep-5",
    "h2/api@1.0.0 by dep-1",
    "h3/worker@3.0.0 by dep-2",
  ]);
});

test("a version that comes back after a failure is restored since the rollback", () => {
  const failed = outcome(2, "FAILED", [["api", "2.0.0", ["h1"]]]);
  const rolledBack = outcome(3, "ROLLED_BACK", [["api", "1.0.0", ["h1", "h2"]]]);
  const [h1] = foldInventory([api1, failed, rolledBack]).entries;
  expect(h1).toMatchObject({ artifactVersion: "1.0.0", via: "ROLLED_BACK", deploymentId: "dep-3" });
  expect(h1?.since).toEqual(rolledBack.occurredAt);
});

test("outcomes without a sequence are older than every sequenced one, in arrival order among themselves", () => {
  const legacyA = outcome(0, "SUCCEEDED", [["api", "0.8.0", ["h1"]]]);
  const legacyB = outcome(0, "SUCCEEDED", [["api", "0.9.0", ["h1"]]]);
  expect(running([legacyA, legacyB])).toEqual(["h1/api@0.9.0 by dep-0"]);
  const late = { ...legacyB, arrival: ++arrivals };
  expect(running([api1, late]).slice(0, 1)).toEqual(["h1/api@1.0.0 by dep-1"]);
});

test("the live colour is the newest blue-green outcome's, in environment order; other strategies keep it", () => {
  const toBlue = outcome(1, "SUCCEEDED", [["api", "1.0.0", ["b1"]]], "blue");
  const toGreen = outcome(2, "SUCCEEDED", [["api", "2.0.0", ["g1"]]], "green");
  const rolling = outcome(3, "SUCCEEDED", [["worker", "1.0.0", ["b1", "g1"]]]);
  expect(foldInventory([toGreen, toBlue]).summary?.liveColour).toBe("green");
  expect(foldInventory([rolling, toGreen, toBlue]).summary?.liveColour).toBe("green");
  expect(foldInventory([rolling]).summary?.liveColour).toBe("");
  // Each colour runs what was last deployed to it.
  expect(running([toBlue, toGreen])).toEqual(["b1/api@1.0.0 by dep-1", "g1/api@2.0.0 by dep-2"]);
});

test("the inventory and the configuration baseline fold any outcomes, in any arrival order, to the same versions", () => {
  const names = fc.constantFrom("api", "worker", "cache");
  const pair = fc.record({
    name: names,
    version: fc.constantFrom("1.0.0", "2.0.0"),
    ci: fc.constantFrom("h1", "h2", "h3"),
  });
  const step = fc.record({
    kind: fc.constantFrom("SUCCEEDED", "FAILED", "ROLLED_BACK" as const),
    pairs: fc.array(pair, { maxLength: 5 }),
    // A rollback naming none restores the whole baseline (recorded before rollbacks named theirs).
    restored: fc.subarray(["api", "worker", "cache"]),
    // A rollback naming no targets restores its names on every target (recorded before it named them).
    targets: fc.subarray(["h1", "h2", "h3"]),
  });
  const OUTCOMES = {
    SUCCEEDED: DeploymentOutcome.SUCCEEDED,
    FAILED: DeploymentOutcome.FAILED,
    ROLLED_BACK: DeploymentOutcome.ROLLED_BACK,
  } as const;
  fc.assert(
    fc.property(fc.array(step, { maxLength: 8 }), fc.func(fc.integer()), (steps, rank) => {
      const histories = steps.map(({ kind, pairs, restored, targets }, i) => {
        const restoredNames = kind === "ROLLED_BACK" ? restored : [];
        const restoredTargets = restoredNames.length ? targets : [];
        // One entry per target and name, as an outcome lists them; a rollback's of its names only, on
        // its targets and others (blue-green lists the live colour's too).
        const listed = [...new Map(pairs.map((p) => [`${p.ci} ${p.name}`, p])).values()].filter(
          (p) => restoredNames.length === 0 || restoredNames.includes(p.name),
        );
        const inventory = outcome(
          i + 1,
          kind,
          listed.map((p) => [p.name, p.version, [p.ci]]),
          "",
          restoredNames,
          restoredTargets,
        );
        const recorded = create(BaselineDeploymentRecordedSchema, {
          metadata: { streamVersion: BigInt(i + 1) },
          environment: "prod",
          deploymentId: `dep-${i + 1}`,
          outcome: OUTCOMES[kind],
          entries: listed.map((p) => ({ ciId: p.ci, artifactName: p.name, artifactVersion: p.version })),
          restoredArtifactNames: restoredNames,
          restoredTargetCiIds: restoredTargets,
          sourceEventId: `e-${i + 1}`,
          environmentSequence: BigInt(i + 1),
        });
        return { inventory, recorded, rank: rank(i) };
      });
      const arrived = [...histories].sort((a, b) => a.rank - b.rank);
      const baseline = foldBaseline(arrived.map((h) => h.recorded)).baseline?.entries ?? [];
      const inventory = foldInventory(arrived.map((h) => h.inventory)).entries;
      expect(inventory.map((e) => `${e.targetCiId} ${e.artifactName}@${e.artifactVersion}`)).toEqual(
        baseline.map((e) => `${e.ciId} ${e.artifactName}@${e.artifactVersion}`),
      );
    }),
  );
});
