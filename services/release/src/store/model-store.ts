import { randomUUID } from "node:crypto";
import { clone, create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { EventStore } from "@rdm/eventstore";
import { InvalidArgument } from "@rdm/grpc";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  type ReleaseModelVersionCreated,
  ReleaseModelVersionCreatedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { type ReleaseModel, ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import type pg from "pg";
import { decodeEvent, encodeEvent } from "../api/event-codec.js";
import { DEFAULT_MODELS, InvalidModel, validateModel } from "../domain/models.js";

const streamOf = (name: string) => `releasemodel-${name}`;

/**
 * Release models as event streams (`releasemodel-<name>`, one ReleaseModelVersionCreated per
 * version). The shipped defaults are version 1 of "standard" and "emergency"; created versions
 * of those names continue at 2.
 */
export class ReleaseModelStore {
  constructor(
    readonly store: EventStore,
    readonly pool: pg.Pool,
  ) {}

  async versions(name: string): Promise<ReleaseModel[]> {
    return (await this.read(name)).versions;
  }

  /** The model's versions and the version of its stream, from one read so they agree. */
  private async read(name: string): Promise<{ versions: ReleaseModel[]; streamVersion: number }> {
    const builtIn = DEFAULT_MODELS.filter((m) => m.name === name);
    const recorded = await this.store.readStream(streamOf(name));
    const created = recorded.map((r) => (decodeEvent(r) as ReleaseModelVersionCreated).model as ReleaseModel);
    return { versions: [...builtIn, ...created], streamVersion: recorded.at(-1)?.version ?? 0 };
  }

  /** The given version, or the latest when version is 0. */
  async get(name: string, version = 0): Promise<ReleaseModel | undefined> {
    const versions = await this.versions(name);
    return version ? versions.find((m) => m.version === version) : versions[versions.length - 1];
  }

  async listLatest(): Promise<ReleaseModel[]> {
    const { rows } = await this.pool.query<{ stream_id: string }>(
      "SELECT stream_id FROM streams WHERE stream_type = 'releasemodel' ORDER BY stream_id",
    );
    const names = new Set([
      ...DEFAULT_MODELS.map((m) => m.name),
      ...rows.map((r) => r.stream_id.slice("releasemodel-".length)),
    ]);
    const latest = await Promise.all([...names].map((name) => this.get(name)));
    return latest.filter((m): m is ReleaseModel => m !== undefined);
  }

  /** Appends the next version of the model; validates it against the model rules first. */
  async create(
    model: ReleaseModel,
    origin: {
      actor: string;
      now: Date;
      requestId: string;
      requestHash: string;
      traceparent: string | undefined;
      response: (created: ReleaseModel) => Uint8Array;
    },
  ): Promise<ReleaseModel> {
    try {
      validateModel(model);
    } catch (error) {
      if (error instanceof InvalidModel)
        throw new InvalidArgument([{ field: "model.phases", description: error.message, reason: error.rule }]);
      throw error;
    }
    for (let attempt = 1; ; attempt++) {
      const stream = streamOf(model.name);
      // Both from one read: a stream version read later could already include a racing create
      // of the same version number, and the append would not notice.
      const { versions, streamVersion } = await this.read(model.name);
      const created = clone(ReleaseModelSchema, model);
      created.version = (versions[versions.length - 1]?.version ?? 0) + 1;
      const event = create(ReleaseModelVersionCreatedSchema, {
        model: created,
        metadata: create(EventMetadataSchema, {
          eventId: randomUUID(),
          occurredAt: timestampFromDate(origin.now),
          actor: origin.actor,
          correlationId: origin.requestId,
          causationId: origin.requestId,
          requestId: origin.requestId,
          streamId: stream,
          streamVersion: BigInt(streamVersion + 1),
        }),
      });
      try {
        await this.store.appendToStream(
          stream,
          streamVersion === 0 ? "no_stream" : streamVersion,
          [encodeEvent(event, origin.traceparent)],
          {
            requestId: origin.requestId,
            requestHash: origin.requestHash,
            response: origin.response(created),
            streamType: "releasemodel",
          },
        );
        return created;
      } catch (error) {
        if ((error as Error).name === "WrongExpectedVersion" && attempt < 5) continue;
        throw error;
      }
    }
  }
}
