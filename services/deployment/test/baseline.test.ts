import { create } from "@bufbuild/protobuf";
import { DeploymentSchema } from "@rdm/proto/gen/rdm/deployment/v1/deployment_pb.js";
import { StepAssignmentSchema } from "@rdm/proto/gen/rdm/deployment/v1/deployment_service_pb.js";
import {
  type DeployedArtifact,
  DeployedArtifactSchema,
  DeploymentStrategyKind,
  StepKind,
} from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import fc from "fast-check";
import { baselineAfter, baselineLeftBy, baselineRestored, forStep, narrowedTo, scopedTo } from "../src/domain/index.js";
import { performTarget } from "../src/executor/reference-executor.js";

const artifact = (name: string, version: string, targetCiIds: string[]) =>
  create(DeployedArtifactSchema, { artifactId: `${name}@${version}`, name, version, targetCiIds });

test("a blue-green success places its package on the idle colour; the live one keeps what it ran", () => {
  const before = [artifact("api", "1.0.0", ["b-1", "g-1"]), artifact("worker", "1.0.0", ["b-1", "g-1"])];
  expect(baselineAfter(before, [artifact("api", "2.0.0", ["g-1"])])).toEqual([
    artifact("api", "1.0.0", ["b-1"]),
    artifact("worker", "1.0.0", ["b-1", "g-1"]),
    artifact("api", "2.0.0", ["g-1"]),
  ]);
});

test("a success replaces what ran under the package's names; the other artifacts keep running", () => {
  const before = [artifact("api", "1.0.0", ["h-1", "h-2"]), artifact("worker", "1.0.0", ["h-1", "h-2"])];
  const placed = [artifact("api", "2.0.0", ["h-1", "h-2"])];
  expect(baselineAfter(before, placed)).toEqual([artifact("worker", "1.0.0", ["h-1", "h-2"]), ...placed]);
  expect(baselineAfter([artifact("api", "1.0.0", ["h-1", "h-2"])], placed)).toEqual(placed);
});

test("what a success leaves, whatever the strategy: its package over the baseline it started from", () => {
  const baseline = [artifact("api", "1.0.0", ["b-1", "g-1"]), artifact("worker", "1.0.0", ["b-1", "g-1"])];
  const rolling = create(DeploymentSchema, {
    strategy: { kind: DeploymentStrategyKind.ROLLING },
    baseline,
    artifacts: [artifact("api", "2.0.0", ["b-1", "g-1"])],
  });
  expect(baselineLeftBy(rolling)).toEqual([
    artifact("worker", "1.0.0", ["b-1", "g-1"]),
    artifact("api", "2.0.0", ["b-1", "g-1"]),
  ]);
  const blueGreen = create(DeploymentSchema, {
    strategy: { kind: DeploymentStrategyKind.BLUE_GREEN },
    baseline,
    artifacts: [artifact("api", "2.0.0", ["g-1"])],
  });
  expect(baselineLeftBy(blueGreen)).toEqual(baselineAfter(baseline, blueGreen.artifacts));
});

test("the same artifact on both sides is listed once, on the targets of both", () => {
  expect(baselineAfter([artifact("api", "1.0.0", ["b-1"])], [artifact("api", "1.0.0", ["g-1"])])).toEqual([
    artifact("api", "1.0.0", ["b-1", "g-1"]),
  ]);
});

test("each target runs the placed version of each artifact it got and what it ran of the others, each artifact once", () => {
  const targets = fc.constantFrom("b-1", "b-2", "g-1", "g-2", "h-1");
  const artifacts = fc.array(
    fc
      .record({
        name: fc.constantFrom("api", "worker", "cron"),
        version: fc.constantFrom("1.0.0", "2.0.0"),
        targets: fc.uniqueArray(targets, { minLength: 1 }),
      })
      .map(({ name, version, targets }) => artifact(name, version, targets)),
    { maxLength: 4 },
  );
  /** Each target's artifacts by name: "name@version" of every version it lists under that name. */
  const slots = (listed: DeployedArtifact[]) => {
    const found = new Map<string, string[]>();
    for (const a of listed)
      for (const ci of a.targetCiIds)
        found.set(`${ci} ${a.name}`, [...(found.get(`${ci} ${a.name}`) ?? []), a.artifactId]);
    return new Map([...found].map(([slot, ids]) => [slot, [...new Set(ids)].sort()]));
  };
  fc.assert(
    fc.property(artifacts, artifacts, (before, placed) => {
      const after = baselineAfter(before, placed);
      const expected = new Map([...slots(before)].filter(([slot]) => !slots(placed).has(slot)));
      for (const [slot, ids] of slots(placed)) expected.set(slot, ids);
      expect(slots(after)).toEqual(expected);
      const listed = after.map((a) => a.artifactId);
      expect(new Set(listed).size).toBe(listed.length);
    }),
  );
});

test("a step's targets get the artifacts that go to them, each naming only them; a switch gets them all", () => {
  const baseline = [artifact("api", "1.0.0", ["b-1", "b-2"]), artifact("api", "2.0.0", ["g-1"])];
  expect(narrowedTo(baseline, ["b-2", "h-1"])).toEqual([artifact("api", "1.0.0", ["b-2"])]);
  expect(forStep(baseline, { kind: StepKind.ROLLBACK, targetCiIds: ["g-1"] })).toEqual([baseline[1]]);
  // Switching back routes traffic to the other colour: what runs there is not on the step's targets.
  expect(forStep(baseline, { kind: StepKind.SWITCH, targetCiIds: ["g-1"] })).toEqual(baseline);
});

test("the reference executor gives each target's command only that target's artifacts", async () => {
  // A rollback step after blue/green restores a baseline that differs by colour.
  const assignment = create(StepAssignmentSchema, {
    artifacts: [artifact("api", "1.0.0", ["b-1"]), artifact("api", "2.0.0", ["g-1"])],
  });
  const placed = async (ciId: string) => {
    const { ok, lines } = await performTarget({ command: 'printf "%s\\n" "$RDM_ARTIFACTS"' }, assignment, ciId, 10_000);
    expect(ok).toBe(true);
    return JSON.parse(lines.join("")).map((a: { version: string }) => a.version);
  };
  expect(await placed("b-1")).toEqual(["1.0.0"]);
  expect(await placed("g-1")).toEqual(["2.0.0"]);
});

test("the reference executor tells a rollback's command which artifact names it restores", async () => {
  const assignment = create(StepAssignmentSchema, {
    step: { kind: StepKind.ROLLBACK, targetCiIds: ["h-1"] },
    artifacts: [artifact("api", "1.0.0", ["h-1"])],
    restoredArtifactNames: ["api", "cache"],
  });
  const command = { command: 'printf "%s\\n" "$RDM_RESTORED_ARTIFACT_NAMES"' };
  const { ok, lines } = await performTarget(command, assignment, "h-1", 10_000);
  expect([ok, JSON.parse(lines.join(""))]).toEqual([true, ["api", "cache"]]);
});

test("a rollback replaces its names' entries on its targets with what it restored; other names and targets stay; without names, all of it", () => {
  const current = [artifact("api", "2.0.0", ["h-1", "h-2", "h-3"]), artifact("worker", "3.0.0", ["h-1"])];
  const restored = [artifact("api", "1.0.0", ["h-1"])];
  const restore = (names: string[], targets: string[]) =>
    baselineRestored(current, { artifacts: restored, restoredArtifactNames: names, restoredTargetCiIds: targets });
  // h-3 left the environment before the deployment: its rollback did not reach it.
  expect(restore(["api", "cache"], ["h-1", "h-2"])).toEqual([
    artifact("api", "2.0.0", ["h-3"]),
    artifact("worker", "3.0.0", ["h-1"]),
    ...restored,
  ]);
  // Recorded before rollbacks named their targets: the names' entries on every target.
  expect(restore(["api", "cache"], [])).toEqual([artifact("worker", "3.0.0", ["h-1"]), ...restored]);
  expect(restore([], ["h-1"])).toEqual(restored);
  expect(scopedTo(current, ["worker"])).toEqual([current[1]]);
  expect(scopedTo(current, [])).toEqual(current);
});
