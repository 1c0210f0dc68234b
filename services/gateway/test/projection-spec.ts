// The gateway's projections on the shared projectionSpec (@rdm/testkit), against real
// PostgreSQL: each event is encoded as its topic carries it, decoded by the projection's own
// decoder and applied in a transaction, as the consumer does.
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { streamOfBody } from "@rdm/messaging";
import type { EventMetadata } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import { projectionSpec } from "@rdm/testkit";
import { eventDecoder, type Projection } from "../src/projections/projection.js";

/** One event as published: its schema and the message. */
export interface Published {
  schema: DescMessage;
  message: MessageShape<DescMessage>;
}

export const T0 = new Date("2026-03-02T09:00:00Z");

/** Event metadata at stream version `version`, `version` minutes after T0 (its stream: the body's). */
export const metadata = (version: bigint, actor = "rita") => ({
  eventId: randomUUID(),
  actor,
  streamVersion: version,
  occurredAt: timestampFromDate(new Date(T0.getTime() + Number(version) * 60_000)),
});

export const published = <D extends DescMessage>(schema: D, init: MessageInitShape<D>): Published => ({
  schema,
  message: create(schema, init),
});

/** `projectionSpec` for one gateway projection: its migrations as setup, its decode and apply per event. */
export function gatewayProjectionSpec(projection: Projection) {
  const decode = eventDecoder(projection.handles);
  return projectionSpec<Published>({
    setup: async (client) => {
      for (const migration of projection.migrations) await client.query(migration.sql);
    },
    apply: async ({ schema, message }, tx) => {
      // Published under the stream its body is about, as the services publish.
      const subject = streamOfBody(schema, message) ?? "";
      const { metadata } = message as { metadata?: EventMetadata };
      const event = decode({
        id: metadata?.eventId ?? randomUUID(),
        type: schema.typeName,
        source: "test",
        subject,
        time: T0,
        data: toBinary(schema, { ...message, metadata: { ...metadata, streamId: subject } } as typeof message),
      });
      if (!event) throw new Error(`${projection.name} does not handle ${schema.typeName}`);
      await projection.apply(event, tx);
    },
  });
}
