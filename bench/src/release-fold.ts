// Folding one release's stream (what GetRelease, GetReleaseGate and a command on a release not in
// the command handler's memory do), by the kernel's fold against evolve one event after another
// (what it did before, copying the release at every event). Prints figures; asserts nothing.
//   pnpm build && node bench/dist/release-fold.js [log entries=2000]
import { randomUUID } from "node:crypto";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { evolve, fold, initialState, type ReleaseEvent, STANDARD_MODEL } from "@rdm/domain-kernel/release";
import * as ev from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";

const entries = Number(process.argv[2] ?? 2000);
const releaseId = randomUUID();
const metadata = (v: number) => ({
  streamVersion: BigInt(v),
  actor: "olga",
  occurredAt: timestampFromDate(new Date(Date.UTC(2026, 11, 1) + v * 60_000)),
});
const events: ReleaseEvent[] = [
  create(ev.ReleaseRegisteredSchema, {
    metadata: metadata(1),
    releaseId,
    key: "REL-2026-0001",
    title: "Payments",
    type: ReleaseType.MAJOR,
    owner: "olga",
    phase: ReleasePhase.REGISTRATION,
    model: STANDARD_MODEL,
  }),
];
for (let i = 0; i < entries; i++) {
  events.push(
    create(ev.ReleaseLogEntryRecordedSchema, {
      metadata: metadata(i + 2),
      releaseId,
      entry: { text: `deployment step ${i} done on host-${i % 40}: ${"x".repeat(150)}`, recordedBy: "deployer-bot" },
    }),
  );
}

const time = (run: () => unknown) => {
  const started = performance.now();
  run();
  return performance.now() - started;
};
for (const n of [Math.floor(entries / 4), Math.floor(entries / 2), entries]) {
  const prefix = events.slice(0, n + 1);
  const byEvolve = time(() => prefix.reduce(evolve, initialState()));
  const folded = Math.min(...[1, 2, 3].map(() => time(() => fold(prefix))));
  console.log(
    `release of ${n} log entries: fold ${folded.toFixed(1)} ms, evolve one event after another ${byEvolve.toFixed(1)} ms (${(byEvolve / folded).toFixed(0)}×)`,
  );
}
