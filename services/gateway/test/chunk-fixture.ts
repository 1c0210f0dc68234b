// What the chunk tests share: projection databases (dropped after the file's tests), events as
// their topics carry them, and the one-by-one and chunked ways of applying them.
import { randomUUID } from "node:crypto";
import { create, type DescMessage, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { runMigrations, withTransaction } from "@rdm/eventstore";
import { type CloudEvent, streamOfBody } from "@rdm/messaging";
import { openDatabase } from "@rdm/runtime";
import { createTestDatabase, type TestDatabase } from "@rdm/testkit";
import type pg from "pg";
import { projections } from "../src/projections/index.js";
import { projectionChunkHandler, projectionHandler } from "../src/projections/projection.js";

const databases: { db: TestDatabase; pool: pg.Pool }[] = [];

/** A database with every projection's tables. */
export async function projectionDatabase(): Promise<pg.Pool> {
  const db = await createTestDatabase("gateway_chunks");
  const pool = await openDatabase(db.url);
  databases.push({ db, pool });
  for (const p of projections) await runMigrations(pool, { component: p.name, migrations: p.migrations });
  return pool;
}

afterAll(async () => {
  for (const { db, pool } of databases) {
    await pool.end();
    await db.drop();
  }
});

export interface TopicEvent {
  envelope: CloudEvent;
  info: { topic: string; partition: number; offset: string };
}

/** Events as `topic` carries them: each at `version` of its stream, `version` minutes into the day. */
export const eventsOn =
  (topic: string) =>
  <D extends DescMessage>(schema: D, version: number, fields: Omit<MessageInitShape<D>, "metadata">): TopicEvent => {
    const id = randomUUID();
    // Under the stream its body is about, as the services publish.
    const streamId = streamOfBody(schema, create(schema, fields as MessageInitShape<D>)) ?? "s";
    const metadata = {
      eventId: id,
      actor: "rita",
      streamId,
      streamVersion: BigInt(version),
      occurredAt: timestampFromDate(new Date(Date.UTC(2026, 11, 2, 8, version))),
      correlationId: `corr-${version}`,
    };
    const message = create(schema, { ...fields, metadata } as unknown as MessageInitShape<D>);
    return {
      envelope: {
        id,
        type: schema.typeName,
        source: "test",
        subject: streamId,
        time: new Date(),
        data: toBinary(schema, message),
      },
      info: { topic, partition: 0, offset: "0" },
    };
  };

/** Each event in its own transaction, as a lone message is applied. */
async function applyOneByOne(pool: pg.Pool, events: TopicEvent[]): Promise<void> {
  const handle = projectionHandler(projections, "");
  for (const { envelope, info } of events) await withTransaction(pool, (tx) => handle(envelope, tx, info));
}

/** The events in chunks of one transaction each, cut before each index of `cuts`. */
export async function applyInChunks(pool: pg.Pool, events: TopicEvent[], cuts: number[]): Promise<void> {
  const handleChunk = projectionChunkHandler(projections, "");
  const bounds = [0, ...cuts, events.length];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const chunk = events.slice(bounds[i], bounds[i + 1]).map(({ envelope, info }) => ({ event: envelope, info }));
    await withTransaction(pool, (tx) => handleChunk(chunk, tx));
  }
}

type Rows = pg.QueryResult["rows"];

/**
 * The rows each of `queries` reads, in a database fed the events one by one (`expected`) and in
 * one fed the same events in chunks cut before each index of `cuts` (`actual`).
 */
export async function viewsBothWays<K extends string>(
  events: TopicEvent[],
  cuts: number[],
  queries: Record<K, string>,
) {
  const read = async (pool: pg.Pool) => {
    const views = {} as Record<K, Rows>;
    for (const [name, sql] of Object.entries(queries) as [K, string][]) views[name] = (await pool.query(sql)).rows;
    return views;
  };
  const oneByOne = await projectionDatabase();
  await applyOneByOne(oneByOne, events);
  const byChunks = await projectionDatabase();
  await applyInChunks(byChunks, events, cuts);
  return { expected: await read(oneByOne), actual: await read(byChunks) };
}

export const withoutSeq = (rows: Record<string, unknown>[]) => rows.map(({ seq: _, ...row }) => row);
