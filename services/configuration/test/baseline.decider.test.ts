// Baselines kept in the environment's order (environment_sequence), whatever order the
// deployment outcomes arrive in, and rollbacks that restore the whole baseline.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { inEnvironmentOrder } from "@rdm/domain-kernel/configuration";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  BaselineArtifactSchema,
  BaselineEntrySchema,
  EnvironmentHealth,
} from "@rdm/proto/gen/rdm/configuration/v1/configuration_pb.js";
import { DeploymentOutcome } from "@rdm/proto/gen/rdm/configuration/v1/events_pb.js";
import {
  type BaselineEvent,
  decide as decideBaseline,
  fold as foldBaseline,
  type RecordDeployment,
} from "../src/domain/baseline.js";

const entry = (ciId: string, artifactName: string, artifactVersion: string) =>
  create(BaselineEntrySchema, { ciId, artifactName, artifactVersion });

let eventIds = 0;
const outcome = (
  environmentSequence: bigint,
  outcomeKind: DeploymentOutcome,
  entries: ReturnType<typeof entry>[],
  deploymentId = `dep-${environmentSequence}`,
): RecordDeployment => ({
  kind: "recordDeployment",
  environment: "prod",
  deploymentId,
  releaseId: "rel-1",
  outcome: outcomeKind,
  entries,
  artifacts: [],
  reason: "",
  restoredArtifactNames: [],
  restoredTargetCiIds: [],
  sourceEventId: `e${++eventIds}`,
  environmentSequence,
});

/** Records the outcomes in the order given, as the consumer does (decide on the history, append). */
function record(arrivals: RecordDeployment[]): BaselineEvent[] {
  const history: BaselineEvent[] = [];
  for (const arrival of arrivals) {
    for (const event of decideBaseline(arrival, foldBaseline(history))) {
      const at = new Date(Date.UTC(2026, 0, 1, 0, Number(arrival.environmentSequence)));
      history.push({
        ...event,
        metadata: create(EventMetadataSchema, {
          streamVersion: BigInt(history.length + 1),
          occurredAt: timestampFromDate(at),
        }),
      });
    }
  }
  return history;
}

const versions = (history: BaselineEvent[]) =>
  foldBaseline(history).baseline?.entries.map((e) => `${e.ciId}/${e.artifactName}@${e.artifactVersion}`);

const apiOnHost1 = outcome(1n, DeploymentOutcome.SUCCEEDED, [entry("host-1", "api", "1.0.0")]);
const workerOnHost2 = outcome(2n, DeploymentOutcome.SUCCEEDED, [entry("host-2", "worker", "3.0.0")]);
const apiUpgrade = outcome(3n, DeploymentOutcome.SUCCEEDED, [entry("host-1", "api", "1.1.0")]);

test("outcomes arriving in any order give the baseline of the environment's order", () => {
  const inOrder = foldBaseline(record([apiOnHost1, workerOnHost2, apiUpgrade])).baseline;
  for (const arrivals of [
    [apiUpgrade, workerOnHost2, apiOnHost1],
    [workerOnHost2, apiUpgrade, apiOnHost1],
    [apiOnHost1, apiUpgrade, workerOnHost2],
  ]) {
    const baseline = foldBaseline(record(arrivals)).baseline;
    expect(baseline).toEqual(inOrder);
  }
  expect(inOrder).toMatchObject({ lastDeploymentId: "dep-3", lastKnownGoodDeploymentId: "dep-3", version: 3n });
  expect(inOrder?.entries.map((e) => `${e.ciId}/${e.artifactName}@${e.artifactVersion}`)).toEqual([
    "host-1/api@1.1.0",
    "host-2/worker@3.0.0",
  ]);
});

test("a late older outcome never overrides what a newer one set, but fills in what it did not touch", () => {
  // The upgrade to 1.1.0 (3) arrives first; then the older 1.0.0 (1) and another artifact (2).
  const history = record([apiUpgrade, apiOnHost1, workerOnHost2]);
  expect(versions(history)).toEqual(["host-1/api@1.1.0", "host-2/worker@3.0.0"]);
  expect(foldBaseline(history).baseline).toMatchObject({
    lastDeploymentId: "dep-3",
    health: EnvironmentHealth.HEALTHY,
  });
  // A late failure older than the newest success does not degrade the environment.
  const lateFailure = outcome(2n, DeploymentOutcome.FAILED, [entry("host-1", "api", "9.9.9")], "dep-failed");
  const withLateFailure = record([apiOnHost1, apiUpgrade, lateFailure]);
  expect(foldBaseline(withLateFailure).baseline).toMatchObject({ health: EnvironmentHealth.HEALTHY });
  expect(versions(withLateFailure)).toEqual(["host-1/api@1.1.0"]);
});

test("a rollback restores exactly the baseline it names: what the failed deployment added is removed", () => {
  const failed = outcome(
    2n,
    DeploymentOutcome.FAILED,
    [entry("host-1", "api", "2.0.0"), entry("host-1", "sidecar", "0.1.0")],
    "dep-2",
  );
  const rolledBack = outcome(3n, DeploymentOutcome.ROLLED_BACK, [entry("host-1", "api", "1.0.0")], "dep-2");
  const history = record([apiOnHost1, failed, rolledBack]);
  expect(versions(history)).toEqual(["host-1/api@1.0.0"]);
  expect(foldBaseline(history).baseline).toMatchObject({
    health: EnvironmentHealth.HEALTHY,
    lastKnownGoodDeploymentId: "dep-1",
    lastDeploymentId: "dep-2",
  });
  // The failure arriving after the rollback changes nothing: it is older.
  expect(foldBaseline(record([apiOnHost1, rolledBack, failed])).baseline).toEqual(foldBaseline(history).baseline);
  // A deployment after the rollback builds on the restored baseline.
  const next = outcome(4n, DeploymentOutcome.SUCCEEDED, [entry("host-2", "worker", "1.0.0")]);
  expect(versions(record([next, apiOnHost1, failed, rolledBack]))).toEqual(["host-1/api@1.0.0", "host-2/worker@1.0.0"]);
});

test("a rollback naming its artifacts replaces those names' entries only: a later deployment of others stays", () => {
  const failed = outcome(3n, DeploymentOutcome.FAILED, [
    entry("host-1", "api", "2.0.0"),
    entry("host-3", "api", "2.0.0"),
  ]);
  const rolledBack = {
    ...outcome(4n, DeploymentOutcome.ROLLED_BACK, [entry("host-1", "api", "1.0.0")], "dep-3"),
    restoredArtifactNames: ["api"],
  };
  const history = record([apiOnHost1, workerOnHost2, failed, rolledBack]);
  // api 2.0.0 left host-3 (it ran no api before); worker, not the rollback's, is as it was.
  expect(versions(history)).toEqual(["host-1/api@1.0.0", "host-2/worker@3.0.0"]);
  // In any order of arrival.
  expect(foldBaseline(record([rolledBack, failed, workerOnHost2, apiOnHost1])).baseline).toEqual(
    foldBaseline(history).baseline,
  );
});

test("backing out a successful deployment takes its artifacts back in the last known good too", () => {
  const good = (history: BaselineEvent[]) =>
    foldBaseline(history).baseline?.lastKnownGood.map((e) => `${e.ciId}/${e.artifactName}@${e.artifactVersion}`);
  // dep-3 (api 1.1.0) succeeded, then was backed out by hand to api 1.0.0.
  const backOut = {
    ...outcome(4n, DeploymentOutcome.ROLLED_BACK, [entry("host-1", "api", "1.0.0")], "dep-3"),
    restoredArtifactNames: ["api"],
    restoredTargetCiIds: ["host-1"],
  };
  const history = record([apiOnHost1, workerOnHost2, apiUpgrade, backOut]);
  expect(good(history)).toEqual(["host-1/api@1.0.0", "host-2/worker@3.0.0"]);
  // A later success of other artifacts keeps its own, with the backed-out one taken back.
  const workerUpgrade = outcome(4n, DeploymentOutcome.SUCCEEDED, [entry("host-2", "worker", "3.1.0")], "dep-4");
  const laterBackOut = { ...backOut, environmentSequence: 5n, sourceEventId: "later" };
  const after = record([apiOnHost1, workerOnHost2, apiUpgrade, workerUpgrade, laterBackOut]);
  expect(good(after)).toEqual(["host-1/api@1.0.0", "host-2/worker@3.1.0"]);
  expect(foldBaseline(after).baseline?.lastKnownGoodDeploymentId).toBe("dep-4");
  // A failed deployment's rollback leaves the last known good as its last success set it.
  const failed = outcome(4n, DeploymentOutcome.FAILED, [entry("host-1", "api", "2.0.0")], "dep-9");
  const restored = { ...backOut, deploymentId: "dep-9", environmentSequence: 5n, sourceEventId: "after-failure" };
  expect(good(record([apiOnHost1, apiUpgrade, failed, restored]))).toEqual(["host-1/api@1.1.0"]);
});

test("a rollback naming its CIs replaces its names' entries there only: a CI it did not reach keeps them", () => {
  // host-3 left the environment: the deployment and its rollback reached host-1 and host-2.
  const failed = outcome(3n, DeploymentOutcome.FAILED, [
    entry("host-1", "api", "2.0.0"),
    entry("host-2", "api", "2.0.0"),
  ]);
  const apiOnHost3 = outcome(2n, DeploymentOutcome.SUCCEEDED, [entry("host-3", "api", "1.0.0")], "dep-2");
  const rolledBack = {
    ...outcome(4n, DeploymentOutcome.ROLLED_BACK, [entry("host-1", "api", "1.0.0")], "dep-3"),
    restoredArtifactNames: ["api"],
    restoredTargetCiIds: ["host-1", "host-2"],
  };
  expect(versions(record([apiOnHost1, apiOnHost3, failed, rolledBack]))).toEqual([
    "host-1/api@1.0.0",
    "host-3/api@1.0.0",
  ]);
  // Naming no CIs (recorded before rollbacks named them): the names' entries on every CI.
  const everywhere = { ...rolledBack, restoredTargetCiIds: [], sourceEventId: "older" };
  expect(versions(record([apiOnHost1, apiOnHost3, failed, everywhere]))).toEqual(["host-1/api@1.0.0"]);
});

test("a rollback listing entries on targets it did not restore (a blue-green's live colour) leaves them with the deployment that put them there", () => {
  const blue = outcome(1n, DeploymentOutcome.SUCCEEDED, [entry("blue-1", "api", "1.0.0")], "dep-blue");
  const green = outcome(2n, DeploymentOutcome.SUCCEEDED, [entry("green-1", "api", "1.0.0")], "dep-green");
  const failed = outcome(3n, DeploymentOutcome.FAILED, [entry("blue-1", "api", "2.0.0")], "dep-3");
  const rolledBack = {
    ...outcome(
      4n,
      DeploymentOutcome.ROLLED_BACK,
      [entry("blue-1", "api", "1.0.0"), entry("green-1", "api", "1.0.0")],
      "dep-3",
    ),
    restoredArtifactNames: ["api"],
    restoredTargetCiIds: ["blue-1"],
  };
  const entries = foldBaseline(record([blue, green, failed, rolledBack])).baseline?.entries ?? [];
  expect(entries.map((e) => [e.ciId, e.artifactVersion, e.deploymentId, e.deployedAt?.seconds])).toEqual([
    ["blue-1", "1.0.0", "dep-3", BigInt(Date.UTC(2026, 0, 1, 0, 4) / 1000)],
    ["green-1", "1.0.0", "dep-green", BigInt(Date.UTC(2026, 0, 1, 0, 2) / 1000)],
  ]);
});

test("an outcome recorded once: the same ce id, or the same environment sequence under another ce id", () => {
  const history = record([apiOnHost1]);
  const state = foldBaseline(history);
  expect(decideBaseline({ ...apiOnHost1 }, state)).toEqual([]);
  expect(decideBaseline({ ...apiOnHost1, sourceEventId: "republished" }, state)).toEqual([]);
  expect(decideBaseline({ ...apiUpgrade }, state)).toHaveLength(1);
});

test("outcomes without a sequence (0) keep their arrival order and come before every sequenced one", () => {
  const legacyA = outcome(0n, DeploymentOutcome.SUCCEEDED, [entry("host-1", "api", "0.8.0")], "legacy-a");
  const legacyB = outcome(0n, DeploymentOutcome.SUCCEEDED, [entry("host-1", "api", "0.9.0")], "legacy-b");
  // Two unsequenced outcomes are both recorded (no sequence to tell them apart).
  const legacyOnly = record([legacyA, legacyB]);
  expect(legacyOnly).toHaveLength(2);
  expect(versions(legacyOnly)).toEqual(["host-1/api@0.9.0"]);
  expect(versions(record([legacyB, legacyA]))).toEqual(["host-1/api@0.8.0"]);
  // A sequenced outcome is newer than any unsequenced one, whenever either arrives.
  const history = record([apiOnHost1, legacyB]);
  expect(inEnvironmentOrder(history).map((e) => e.deploymentId)).toEqual(["legacy-b", "dep-1"]);
  expect(versions(history)).toEqual(["host-1/api@1.0.0"]);
});

test("an outcome listing artifacts with their CIs folds as the same outcome listing an entry per pair", () => {
  /** The outcome's entries grouped by artifact name and version, in order, as the consumer writes them when large. */
  const grouped = (arrival: RecordDeployment): RecordDeployment => {
    const artifacts = new Map<string, ReturnType<typeof create<typeof BaselineArtifactSchema>>>();
    for (const { ciId, artifactName, artifactVersion } of arrival.entries) {
      const key = `${artifactName}@${artifactVersion}`;
      const artifact = artifacts.get(key) ?? create(BaselineArtifactSchema, { artifactName, artifactVersion });
      artifact.ciIds.push(ciId);
      artifacts.set(key, artifact);
    }
    return { ...arrival, entries: [], artifacts: [...artifacts.values()] };
  };
  const hosts = ["host-1", "host-2", "host-3"];
  const wide = (sequence: bigint, kind: DeploymentOutcome, version: string, on = hosts) =>
    outcome(
      sequence,
      kind,
      on.flatMap((host) => [entry(host, "api", version), entry(host, "worker", version)]),
    );
  const arrivals = [
    wide(1n, DeploymentOutcome.SUCCEEDED, "1.0.0"),
    wide(2n, DeploymentOutcome.FAILED, "2.0.0", ["host-2", "host-4"]),
    wide(3n, DeploymentOutcome.ROLLED_BACK, "1.0.0"),
    wide(4n, DeploymentOutcome.SUCCEEDED, "1.1.0", ["host-1"]),
  ];
  const asEntries = foldBaseline(record(arrivals)).baseline;
  expect(asEntries?.entries).toHaveLength(6);
  expect(foldBaseline(record(arrivals.map(grouped))).baseline).toEqual(asEntries);
  // Both forms in one history, as after the consumer switched between them.
  expect(foldBaseline(record(arrivals.map((a, i) => (i % 2 ? grouped(a) : a)))).baseline).toEqual(asEntries);
});
