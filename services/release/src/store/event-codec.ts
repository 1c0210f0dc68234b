import { createRegistry } from "@bufbuild/protobuf";
import { eventCodec } from "@rdm/command-handler";
import type { RecordedEvent } from "@rdm/eventstore";
import {
  file_rdm_release_v1_events,
  type ReleaseModelVersionCreated,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type { ReleaseEvent } from "../domain/release.js";

/** An event of the service's streams: of a release, or a release model's new version. */
export type ReleaseServiceEvent = ReleaseEvent | ReleaseModelVersionCreated;

/** Every event type the service's streams may hold (releases and release models); the stored type is the full protobuf message name. */
export const releaseEventRegistry = createRegistry(file_rdm_release_v1_events);

export const releaseCodec = eventCodec<ReleaseServiceEvent>(releaseEventRegistry, "release");

export const decodeReleaseEvent = (recorded: RecordedEvent) => releaseCodec.decode(recorded) as ReleaseEvent;
