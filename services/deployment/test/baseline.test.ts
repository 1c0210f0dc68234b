import { create } from "@bufbuild/protobuf";
import { type DeployedArtifact, DeployedArtifactSchema } from "@rdm/proto/gen/rdm/deployment/v1/events_pb.js";
import fc from "fast-check";
import { baselineAfter } from "../src/domain/index.js";

const artifact = (name: string, version: string, targetCiIds: string[]) =>
  create(DeployedArtifactSchema, { artifactId: `${name}@${version}`, name, version, targetCiIds });

/** Each target's artifacts, as "name@version", sorted: what an executor would find there. */
const perTarget = (artifacts: DeployedArtifact[]) => {
  const found = new Map<string, string[]>();
  for (const a of artifacts) for (const ci of a.targetCiIds) found.set(ci, [...(found.get(ci) ?? []), a.artifactId]);
  return new Map([...found].map(([ci, ids]) => [ci, [...new Set(ids)].sort()]));
};

test("a blue-green success places its package on the idle colour; the live one keeps what it ran", () => {
  const before = [artifact("api", "1.0.0", ["b-1", "g-1"]), artifact("worker", "1.0.0", ["b-1", "g-1"])];
  expect(baselineAfter(before, [artifact("api", "2.0.0", ["g-1"])])).toEqual([
    artifact("api", "1.0.0", ["b-1"]),
    artifact("worker", "1.0.0", ["b-1"]),
    artifact("api", "2.0.0", ["g-1"]),
  ]);
});

test("a success reaching every target replaces the baseline, as a whole package does", () => {
  const before = [artifact("api", "1.0.0", ["h-1", "h-2"]), artifact("worker", "1.0.0", ["h-1", "h-2"])];
  const placed = [artifact("api", "2.0.0", ["h-1", "h-2"])];
  expect(baselineAfter(before, placed)).toEqual(placed);
});

test("the same artifact on both sides is listed once, on the targets of both", () => {
  expect(baselineAfter([artifact("api", "1.0.0", ["b-1"])], [artifact("api", "1.0.0", ["g-1"])])).toEqual([
    artifact("api", "1.0.0", ["b-1", "g-1"]),
  ]);
});

test("every target reached runs the package placed, every other target what it ran, each artifact once", () => {
  const targets = fc.constantFrom("b-1", "b-2", "g-1", "g-2", "h-1");
  const artifacts = fc.array(
    fc
      .record({
        name: fc.constantFrom("api", "worker"),
        version: fc.constantFrom("1.0.0", "2.0.0"),
        targets: fc.uniqueArray(targets, { minLength: 1 }),
      })
      .map(({ name, version, targets }) => artifact(name, version, targets)),
    { maxLength: 4 },
  );
  fc.assert(
    fc.property(artifacts, artifacts, (before, placed) => {
      const after = perTarget(baselineAfter(before, placed));
      const expected = new Map([...perTarget(before)].filter(([ci]) => !perTarget(placed).has(ci)));
      for (const [ci, ids] of perTarget(placed)) expected.set(ci, ids);
      expect(after).toEqual(expected);
      const listed = baselineAfter(before, placed).map((a) => a.artifactId);
      expect(new Set(listed).size).toBe(listed.length);
    }),
  );
});
