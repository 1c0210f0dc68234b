import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { type EventMetadata, EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";

/**
 * An event as `publishEvents` of `@rdm/messaging` takes it (its `CloudEvent`, which this package
 * cannot import: that package's tests use this one).
 */
export interface PublishedEvent {
  id: string;
  type: string;
  source: string;
  subject: string;
  time: Date;
  data: Uint8Array;
}

/** What an event's envelope and metadata say beyond its stream: who, when, in reply to what. */
export type PublishedEventOptions = Partial<
  Pick<EventMetadata, "eventId" | "actor" | "occurredAt" | "correlationId" | "causationId">
> & { time?: Date };

/**
 * Makes events as a service publishes them, for tests and benches that stand in for that service:
 * the body's metadata names the event (`ce_id`), its stream (`ce_subject`) and the stream's next
 * version, counted per subject by this object, which consumers check (`checkEventIdentity`).
 */
export class PublishedStreams {
  private readonly versions = new Map<string, bigint>();

  constructor(private readonly actor = "upstream") {}

  /** `source` is the producing service, as in `rdm/release`; `subject` the stream. */
  event<S extends DescMessage>(
    source: string,
    schema: S,
    subject: string,
    init: Omit<MessageInitShape<S>, "metadata" | "$typeName">,
    options: PublishedEventOptions = {},
  ): PublishedEvent {
    const streamVersion = (this.versions.get(subject) ?? 0n) + 1n;
    this.versions.set(subject, streamVersion);
    const { time = new Date(), ...metadataFields } = options;
    const metadata = create(EventMetadataSchema, {
      eventId: randomUUID(),
      actor: this.actor,
      ...metadataFields,
      streamId: subject,
      streamVersion,
    });
    const message = create(schema, { ...init, metadata } as unknown as MessageInitShape<S>);
    return {
      id: metadata.eventId,
      type: schema.typeName,
      source,
      subject,
      time,
      data: toBinary(schema, message),
    };
  }
}
