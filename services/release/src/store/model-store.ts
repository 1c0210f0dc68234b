import { clone, create } from "@bufbuild/protobuf";
import { type Aggregate, type Command, RuleViolation } from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import {
  type ReleaseModelVersionCreated,
  ReleaseModelVersionCreatedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { type ReleaseModel, ReleaseModelSchema } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import type pg from "pg";
import { DEFAULT_MODELS, InvalidModel, validateModel } from "../domain/models.js";
import { releaseCodec } from "./event-codec.js";

const streamOf = (name: string) => `releasemodel-${name}`;

/** A model's versions, oldest first: the shipped default (version 1) when there is one, then the created ones. */
export interface ModelVersions {
  versions: ReleaseModel[];
}

/** The stream of one model name (`releasemodel-<name>`, one ReleaseModelVersionCreated per version). */
const modelStream = (name: string): Aggregate<ModelVersions, ReleaseModelVersionCreated> => ({
  streamType: "releasemodel",
  initialState: () => ({ versions: DEFAULT_MODELS.filter((m) => m.name === name) }),
  evolve: (state, event) => (event.model ? { versions: [...state.versions, event.model] } : state),
});

/**
 * Creating the next version of a model: validated against the model rules, numbered after the
 * latest version of the state it is decided on (a racing create makes the handler decide again).
 */
export function createModelVersion(model: ReleaseModel): Command<ModelVersions, ReleaseModelVersionCreated> {
  return {
    aggregate: modelStream(model.name),
    streamId: streamOf(model.name),
    decide: (state) => {
      try {
        validateModel(model);
      } catch (error) {
        if (error instanceof InvalidModel)
          throw new RuleViolation("INVALID_ARGUMENT", error.rule, error.message, { subject: "model.phases" });
        throw error;
      }
      const created = clone(ReleaseModelSchema, model);
      created.version = (state.versions.at(-1)?.version ?? 0) + 1;
      return [create(ReleaseModelVersionCreatedSchema, { model: created })];
    },
  };
}

/**
 * Release models as event streams. The shipped defaults are version 1 of "standard" and
 * "emergency"; created versions of those names continue at 2.
 */
export class ReleaseModelStore {
  constructor(
    readonly store: EventStore,
    readonly pool: pg.Pool,
  ) {}

  async versions(name: string): Promise<ReleaseModel[]> {
    const recorded = await this.store.readStream(streamOf(name));
    const aggregate = modelStream(name);
    return recorded
      .map((r) => releaseCodec.decode(r) as ReleaseModelVersionCreated)
      .reduce(aggregate.evolve, aggregate.initialState()).versions;
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
}
