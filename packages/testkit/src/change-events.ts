import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ChangeType } from "@rdm/proto/gen/rdm/change/v1/change_pb.js";
import {
  ChangeRequestAuthorizedSchema,
  ChangeRequestRaisedSchema,
  ChangeRequestScheduledSchema,
} from "@rdm/proto/gen/rdm/change/v1/events_pb.js";
import { TimeWindowSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import type { PublishedEvent, PublishedStreams } from "./published-event.js";

/**
 * The change service's events of a change raised (naming no environment: production), authorized
 * and scheduled from an hour ago to an hour ahead: what a production deployment's gates need of a
 * change, for tests and benches that stand in for the change service. In order; publish them to
 * its topic.
 */
export function authorizedChangeEvents(
  streams: PublishedStreams,
  changeRequestId: string,
  type = ChangeType.NORMAL,
): PublishedEvent[] {
  const window = create(TimeWindowSchema, {
    start: timestampFromDate(new Date(Date.now() - 3_600_000)),
    end: timestampFromDate(new Date(Date.now() + 3_600_000)),
  });
  return [
    streams.event("rdm/change", ChangeRequestRaisedSchema, changeRequestId, { changeRequestId, type }),
    streams.event("rdm/change", ChangeRequestAuthorizedSchema, changeRequestId, { changeRequestId }),
    streams.event("rdm/change", ChangeRequestScheduledSchema, changeRequestId, { changeRequestId, window }),
  ];
}
