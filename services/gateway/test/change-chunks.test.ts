// A fetch's change events, which the gateway projects event by event (the audit trail completes
// an event's environments from the change view as the events before it left it), leave in one
// chunk the same views as one by one, the audit rows written once per chunk: against real
// PostgreSQL, on two databases fed the same encoded events.
import { randomUUID } from "node:crypto";
import { CHANGE_EVENTS_TOPIC } from "@rdm/messaging";
import { ChangeState, ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestDetailsUpdatedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestSubmittedSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { eventsOn, viewsBothWays, withoutSeq } from "./chunk-fixture.js";

const changeEvent = eventsOn(CHANGE_EVENTS_TOPIC);

const a = randomUUID();
const b = randomUUID();
const raised = (changeRequestId: string, environments: string[]) =>
  changeEvent(ChangeRequestRaisedSchema, 1, {
    changeRequestId,
    key: `CHG-${changeRequestId.slice(0, 4)}`,
    type: ChangeType.NORMAL,
    state: ChangeState.DRAFT,
    title: "Upgrade the database",
    environments,
  });
const submitted = (changeRequestId: string, version: number) =>
  changeEvent(ChangeRequestSubmittedSchema, version, { changeRequestId, state: ChangeState.SUBMITTED });
const movedTo = (changeRequestId: string, version: number, environments: string[]) =>
  changeEvent(ChangeRequestDetailsUpdatedSchema, version, {
    changeRequestId,
    state: ChangeState.DRAFT,
    title: "Upgrade the database",
    environments,
  });

// Events without environments (Submitted) take them from the change view as it was after the
// events before them: production for a's first, staging after its details moved it.
const events = [
  raised(a, ["production"]),
  submitted(a, 2),
  raised(b, ["test"]),
  movedTo(a, 3, ["staging"]),
  submitted(a, 4),
  submitted(b, 2),
  // A replay of an applied version: the view keeps what it has, the audit trail the new event id.
  submitted(a, 4),
];

test("a chunk of change events leaves the views and audit rows the events leave one by one", async () => {
  // A change raised, submitted and moved in one chunk; the rest in the next.
  const { expected, actual } = await viewsBothWays(events, [5], {
    changes: "SELECT * FROM change_view ORDER BY change_request_id",
    audit: "SELECT * FROM audit_event ORDER BY seq",
  });
  expect(actual.changes).toEqual(expected.changes);
  expect(withoutSeq(actual.audit)).toEqual(withoutSeq(expected.audit));
  // What was applied, so the comparison compares something.
  expect(expected.audit.map((row) => [row.change_request_id === a ? "a" : "b", row.environments])).toEqual([
    ["a", ["production"]],
    ["a", ["production"]],
    ["b", ["test"]],
    ["a", ["staging"]],
    ["a", ["staging"]],
    ["b", ["test"]],
    ["a", ["staging"]],
  ]);
});
