import type { FastifyPluginAsyncJsonSchemaToTs } from "@fastify/type-provider-json-schema-to-ts";
import type pg from "pg";
import type { EventStreams } from "./sse.js";

/** What every route family gets: the projection database, and the server's event streams. */
export interface RouteOptions {
  pool: pg.Pool;
  streams: EventStreams;
}

/**
 * A route family: a plugin whose request and reply types are derived from its route schemas
 * (json-schema-to-ts), date-times being the Dates the handlers hand to the serializer.
 */
export type RoutePlugin = FastifyPluginAsyncJsonSchemaToTs<{
  Options: RouteOptions;
  SerializerSchemaOptions: {
    deserialize: [
      { pattern: { type: "string"; format: "date-time" }; output: Date | string },
      { pattern: { type: readonly ["string", "null"]; format: "date-time" }; output: Date | string | null },
    ];
  };
}>;
