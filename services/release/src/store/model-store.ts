import { create } from "@bufbuild/protobuf";
import { type Aggregate, type Command, RuleViolation } from "@rdm/command-handler";
import type { EventStore } from "@rdm/eventstore";
import type { Logger } from "@rdm/observability";
import {
  type ReleaseModelVersionCreated,
  ReleaseModelVersionCreatedSchema,
} from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import type { ReleaseModel } from "@rdm/proto/gen/rdm/release/v1/model_pb.js";
import type { Worker } from "@rdm/runtime";
import type pg from "pg";
import { DEFAULT_MODELS, InvalidModel, normalizeModel, validateModel } from "../domain/models.js";
import { releaseCodec } from "./event-codec.js";

const streamOf = (name: string) => `releasemodel-${name}`;

/** NOTIFYed with a model's name when a version of it is created (at commit), so caches drop it. */
export const MODEL_VERSIONS_CHANNEL = "rdm_release_model_versions";

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
      let created: ReleaseModel;
      try {
        validateModel(model);
        created = normalizeModel(model);
      } catch (error) {
        if (error instanceof InvalidModel)
          throw new RuleViolation("INVALID_ARGUMENT", error.rule, error.message, { subject: error.field });
        throw error;
      }
      created.version = (state.versions.at(-1)?.version ?? 0) + 1;
      return [create(ReleaseModelVersionCreatedSchema, { model: created })];
    },
    project: async (tx) => {
      await tx.query("SELECT pg_notify($1, $2)", [MODEL_VERSIONS_CHANNEL, model.name]);
    },
  };
}

/**
 * Release models as event streams. The shipped defaults are version 1 of "standard" and
 * "emergency"; created versions of those names continue at 2.
 *
 * Every registration looks a model up, so a model's versions are kept in memory while a
 * connection LISTENs on MODEL_VERSIONS_CHANNEL (`listen`): a version created by any instance
 * drops its name at commit, and one created here before its RPC answers (`invalidate`).
 * Without the listener nothing is kept.
 */
export class ReleaseModelStore {
  private readonly cache = new Map<string, ReleaseModel[]>();
  /** Bumped by every invalidation: a read that overlapped one is not kept. */
  private generation = 0;
  private listening = false;

  constructor(
    readonly store: EventStore,
    readonly pool: pg.Pool,
  ) {}

  async versions(name: string): Promise<ReleaseModel[]> {
    const cached = this.listening ? this.cache.get(name) : undefined;
    if (cached) return cached;
    const generation = this.generation;
    const versions = await this.readVersions(name);
    if (this.listening && generation === this.generation) this.cache.set(name, versions);
    return versions;
  }

  /** Whether versions are kept in memory now (a connection LISTENs). */
  get caching(): boolean {
    return this.listening;
  }

  invalidate(name?: string): void {
    this.generation++;
    if (name === undefined) this.cache.clear();
    else this.cache.delete(name);
  }

  /**
   * Keeps versions in memory while one of the pool's connections LISTENs; stopped on shutdown.
   * Listening starts in the background: while the database cannot be reached (at start, or after
   * the connection broke) models are read every time and the listener tries again, 200 ms after
   * the first failure, doubling up to 5 s.
   */
  listen(logger: Logger): Worker {
    let stopped = false;
    let client: pg.PoolClient | undefined;
    let retry: NodeJS.Timeout | undefined;
    let wasLost = false;
    const lost = (from: pg.PoolClient | undefined, error: Error, delay: number) => {
      if (from !== client) return; // a connection already given up
      // Without notifications the cache could go stale: read every time until listening again.
      this.listening = false;
      wasLost = true;
      this.invalidate();
      client?.release(true);
      client = undefined;
      if (stopped) return;
      logger.error(
        { err: error, retry_in_ms: delay },
        "release model cache: not listening, models are read every time",
      );
      retry = setTimeout(() => void connect(Math.min(delay * 2, 5_000)), delay);
    };
    const connect = async (delay: number) => {
      let connected: pg.PoolClient | undefined;
      try {
        connected = await this.pool.connect();
        if (stopped) return connected.release(true);
        client = connected;
        connected.on("notification", (message) => this.invalidate(message.payload));
        const listener = connected;
        listener.on("error", (error) => lost(listener, error, 200));
        await connected.query(`LISTEN ${MODEL_VERSIONS_CHANNEL}`);
        // Whatever was cached before this connection listened may have missed a notification.
        this.invalidate();
        this.listening = !stopped;
        if (wasLost && this.listening) logger.info("release model cache: listening again");
        wasLost = false;
      } catch (error) {
        // Unless its "error" event already gave this connection up.
        if (connected === client) lost(client, error as Error, delay);
      }
    };
    void connect(200);
    return {
      stop: async () => {
        stopped = true;
        clearTimeout(retry);
        this.listening = false;
        this.invalidate();
        client?.release(true);
        client = undefined;
      },
    };
  }

  private async readVersions(name: string): Promise<ReleaseModel[]> {
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
