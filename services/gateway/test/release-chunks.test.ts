// A fetch's release events applied at once (projectionChunkHandler: one statement for the release views)
// leave the same views as the same events applied one by one, each in its own transaction, as a
// lone message is: against real PostgreSQL, on two databases fed the same encoded events.
import { randomUUID } from "node:crypto";
import { RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import {
  ReleaseLogEntryRecordedSchema,
  ReleaseModelVersionCreatedSchema,
  ReleaseNotificationRequestedSchema,
  ReleasePlanningUpdatedSchema,
  ReleaseRegisteredSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { LogEntryKind, ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { applyInChunks, eventsOn, projectionDatabase, viewsBothWays, withoutSeq } from "./chunk-fixture.js";

const releaseEvent = eventsOn(RELEASE_EVENTS_TOPIC);

const a = randomUUID();
const b = randomUUID();
const registered = (releaseId: string, version: number) =>
  releaseEvent(ReleaseRegisteredSchema, version, {
    releaseId,
    key: `REL-${releaseId.slice(0, 4)}`,
    title: "first title",
    type: ReleaseType.MINOR,
    owner: "olga",
    phase: ReleasePhase.PLANNING,
  });
const planned = (releaseId: string, version: number, title: string) =>
  releaseEvent(ReleasePlanningUpdatedSchema, version, { releaseId, title, stakeholders: ["sam", "sue"] });
const notified = (releaseId: string, version: number) =>
  releaseEvent(ReleaseNotificationRequestedSchema, version, {
    releaseId,
    notificationId: randomUUID(),
    recipients: ["olga"],
    phase: ReleasePhase.PLANNING,
  });

const events = [
  registered(a, 1),
  notified(a, 2),
  registered(b, 1),
  planned(a, 3, "second title"),
  // Not a release's event: the audit trail only.
  releaseEvent(ReleaseModelVersionCreatedSchema, 1, {}),
  // A later version again under another event id: the release already includes it.
  planned(a, 3, "replayed title"),
  planned(b, 2, "b's title"),
  // A release the gateway never saw registered: nothing to fold onto.
  planned(randomUUID(), 4, "orphan"),
  releaseEvent(ReleaseLogEntryRecordedSchema, 4, {
    releaseId: a,
    entry: { kind: LogEntryKind.RISK, text: "a risk", recordedBy: "rita" },
  }),
  planned(b, 3, "b's last title"),
];

test("a chunk applied at once leaves the views the events leave applied one by one", async () => {
  // A release registered and changed in one chunk, then changed again in the next: every view
  // the release topic feeds, rows in their order.
  const { expected, actual } = await viewsBothWays(events, [4], {
    releases: "SELECT * FROM release_view ORDER BY release_id",
    log: "SELECT * FROM release_event_log ORDER BY release_id, version",
    entries: "SELECT * FROM release_log_view ORDER BY release_id, position",
    history: "SELECT * FROM release_history ORDER BY seq",
    audit: "SELECT * FROM audit_event ORDER BY seq",
  });
  expect(actual.releases).toEqual(expected.releases);
  expect(actual.log).toEqual(expected.log);
  expect(actual.entries).toEqual(expected.entries);
  expect(withoutSeq(actual.history)).toEqual(withoutSeq(expected.history));
  expect(withoutSeq(actual.audit)).toEqual(withoutSeq(expected.audit));
  // What was applied, so the comparison compares something.
  expect(expected.releases.map((r) => [r.title, r.version])).toEqual(
    [
      [a, "second title", "4"],
      [b, "b's last title", "3"],
    ]
      .sort(([x], [y]) => (x as string).localeCompare(y as string))
      .map(([, title, version]) => [title, version]),
  );
  expect(expected.history).toHaveLength(7);
  expect(expected.entries.map((e) => [e.position, e.entry.text])).toEqual([[0, "a risk"]]);
  // The model pinned at registration stays (later writes of a row do not send it again).
  expect(actual.releases.map((r) => (r.model as { name?: string } | null)?.name)).toEqual(["standard", "standard"]);
  expect(expected.audit).toHaveLength(events.length);
});

test("a release row moved on by another replica is folded from the row, not from the state this process wrote", async () => {
  const pool = await projectionDatabase();
  const c = randomUUID();
  await applyInChunks(pool, [registered(c, 1)], []);
  // Another gateway replica applied version 2, a new title, to the same database.
  await pool.query(
    `UPDATE release_view SET version = 2, title = 'set elsewhere',
       snapshot = jsonb_set(jsonb_set(snapshot, '{title}', '"set elsewhere"'), '{version}', '"2"')
     WHERE release_id = $1`,
    [c],
  );
  await applyInChunks(pool, [notified(c, 3)], []);
  const { rows } = await pool.query(
    "SELECT title, version, snapshot->>'title' AS folded FROM release_view WHERE release_id = $1",
    [c],
  );
  expect(rows).toEqual([{ title: "set elsewhere", version: "3", folded: "set elsewhere" }]);
});
