// After the release service's process was killed with SIGKILL mid-flow: no effect lost and none
// doubled, in the services' stores (events by type and cause, notification deliveries) and on
// the topics (every stored event published, a redelivery of one event being the same event id).
import { waitFor } from "@rdm/testkit";
import { eventOf, type Made } from "./release-to-production.milestones.js";
import type { Actors } from "./release-to-production.steps.js";
import type { RunningSystem } from "./release-to-production.system.js";

type Store = "release" | "change" | "configuration" | "deployment";

/** The reactions to upstream events: each happens once per cause. */
const REACTIONS = [
  "ReleaseDeviationRecorded",
  "ReleaseDeploymentRecorded",
  "ChangeImplementationStarted",
  "ChangeRequestFailed",
  "ChangeRequestImplemented",
  "BaselineDeploymentRecorded",
];
const short = (type: string) => type.replace(/^rdm\.\w+\.v1\./, "");

/** A stream's events in a store: their ids, and their count per type and cause. */
async function stored(system: RunningSystem, store: Store, stream: string) {
  const rows = await system.query<{ event_id: string; type: string; cause: string }>(
    store,
    "SELECT event_id::text, type, metadata->>'causationId' AS cause FROM events WHERE stream_id = $1",
    [stream],
  );
  const perType: Record<string, number> = {};
  const perCause: Record<string, number> = {};
  for (const row of rows) {
    perType[short(row.type)] = (perType[short(row.type)] ?? 0) + 1;
    const key = `${short(row.type)} ${row.cause}`;
    if (REACTIONS.includes(short(row.type))) perCause[key] = (perCause[key] ?? 0) + 1;
  }
  return { ids: rows.map((r) => r.event_id).sort(), perType, perCause };
}

export async function expectEachEffectOnce(system: RunningSystem, actors: Actors, first: Made, second: Made) {
  const streams: [Store, string][] = [
    ["release", second.releaseId],
    ["change", second.changeId],
    ["configuration", "baseline-production"],
    ["deployment", second.production],
  ];
  const all = await Promise.all(streams.map(([store, id]) => stored(system, store, id)));
  const [release, change, baseline] = all;
  expect(release?.perType).toMatchObject({ ReleaseDeviationRecorded: 2 });
  expect(change?.perType).toMatchObject({ ChangeImplementationStarted: 1, ChangeRequestFailed: 1 });
  // Release 1's success, then release 2's failure and rollback: one record per outcome.
  const outcome = async (made: Made, type: string) =>
    `BaselineDeploymentRecorded ${(await eventOf(system, made.production, `deployment.v1.Deployment${type}`)).id}`;
  const outcomes = [await outcome(first, "Succeeded"), await outcome(second, "Failed")];
  outcomes.push(await outcome(second, "RolledBack"));
  expect(Object.keys(baseline?.perCause ?? {}).sort()).toEqual(outcomes.sort());
  for (const { perCause } of all) expect(Object.entries(perCause).filter(([, n]) => n > 1)).toEqual([]);
  const { deliveries } = await actors.rita.release.listNotificationDeliveries({ releaseId: second.releaseId });
  expect(deliveries.filter((d) => d.trigger === "rdm.release.v1.ReleaseDeviationRecorded")).toHaveLength(2);

  // On the topics: every stored event of these streams, each once (by id), nothing else.
  const inStores = await Promise.all(streams.map(async ([store, id]) => (await stored(system, store, id)).ids));
  await waitFor(
    () => {
      const published = system.published();
      const onTopics = streams.map(([, id]) => [
        ...new Set(published.filter((p) => p.subject === id).map((p) => p.id)),
      ]);
      expect(onTopics.map((ids) => ids.sort())).toEqual(inStores);
      return true;
    },
    { timeoutMs: 60_000, description: "every stored event of the streams on the topics" },
  );
}
