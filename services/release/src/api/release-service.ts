import { createHash, randomUUID } from "node:crypto";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { EventStore, RecordedEvent } from "@rdm/eventstore";
import { AlreadyExists, type CallContext, FailedPrecondition, NotFound, type ServiceRegistration } from "@rdm/grpc";
import { EventMetadataSchema } from "@rdm/proto/gen/rdm/common/v1/common_pb.js";
import {
  type GetReleaseRequest,
  GetReleaseResponseSchema,
  type RegisterReleaseRequest,
  type RegisterReleaseResponse,
  RegisterReleaseResponseSchema,
  ReleaseService,
} from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import type pg from "pg";
import { decide, fold, type ReleaseEvent, ReleaseRuleViolation, releaseKey } from "../domain/release.js";
import { decodeReleaseEvent, encodeReleaseEvent } from "./event-codec.js";

export interface ReleaseApiDeps {
  store: EventStore;
  pool: pg.Pool;
  clock?: () => Date;
}

async function nextReleaseKey(pool: pg.Pool, year: number): Promise<string> {
  const { rows } = await pool.query<{ last: number }>(
    `INSERT INTO release_keys (year, last) VALUES ($1, 1)
     ON CONFLICT (year) DO UPDATE SET last = release_keys.last + 1 RETURNING last`,
    [year],
  );
  return releaseKey(year, rows[0]?.last ?? 1);
}

const hashRequest = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

function toApiError(error: unknown): unknown {
  if (!(error instanceof ReleaseRuleViolation)) return error;
  switch (error.code) {
    case "ALREADY_EXISTS":
      return new AlreadyExists(error.message);
    case "NOT_FOUND":
      return new NotFound("release", error.message);
    default:
      return new FailedPrecondition(error.message, [
        { type: error.rule, subject: "release", description: error.message },
      ]);
  }
}

async function loadRelease(store: EventStore, releaseId: string) {
  const recorded: RecordedEvent[] = await store.readStream(releaseId);
  return fold(recorded.map(decodeReleaseEvent));
}

export function releaseServiceHandlers({
  store,
  pool,
  clock = () => new Date(),
}: ReleaseApiDeps): ServiceRegistration<(typeof ReleaseService)["method"]> {
  /** A retried request id returns the first response; reusing it for another request is refused. */
  async function replay(requestId: string, requestHash: string): Promise<RegisterReleaseResponse | undefined> {
    const previous = await store.getCommandResult(requestId);
    if (!previous?.response) return undefined;
    if (previous.requestHash !== requestHash) {
      throw new FailedPrecondition("request_id was already used for a different request", [
        { type: "request.idempotency", subject: requestId, description: "request_id reused with a different payload" },
      ]);
    }
    return fromBinary(RegisterReleaseResponseSchema, previous.response);
  }

  return {
    service: ReleaseService,
    roles: {
      registerRelease: ["release-manager"],
      getRelease: [
        "viewer",
        "release-manager",
        "release-coordinator",
        "approver",
        "change-manager",
        "deployer",
        "config-manager",
      ],
    },
    handlers: {
      async registerRelease(request: RegisterReleaseRequest, ctx: CallContext) {
        const requestHash = hashRequest(toBinary(ReleaseService.method.registerRelease.input, request));
        const replayed = await replay(request.requestId, requestHash);
        if (replayed) return replayed;

        const now = clock();
        const releaseId = randomUUID();
        let events: ReleaseEvent[];
        try {
          events = decide(
            {
              kind: "registerRelease",
              releaseId,
              key: await nextReleaseKey(pool, now.getUTCFullYear()),
              title: request.title,
              description: request.description,
              type: request.type,
              category: request.category,
              owner: request.owner,
              coordinator: request.coordinator,
              stakeholders: request.stakeholders,
              risk: request.risk,
              plannedWindow: request.plannedWindow,
            },
            await loadRelease(store, releaseId),
          );
        } catch (error) {
          throw toApiError(error);
        }
        const stamped = events.map((event, index) => ({
          ...event,
          metadata: create(EventMetadataSchema, {
            eventId: randomUUID(),
            occurredAt: timestampFromDate(now),
            actor: ctx.principal.subject,
            correlationId: request.requestId,
            causationId: request.requestId,
            requestId: request.requestId,
            streamId: releaseId,
            streamVersion: BigInt(index + 1),
          }),
        }));
        const response = create(RegisterReleaseResponseSchema, { release: fold(stamped).release });
        try {
          await store.appendToStream(
            releaseId,
            "no_stream",
            stamped.map((event) => encodeReleaseEvent(event, ctx.traceparent)),
            {
              requestId: request.requestId,
              requestHash,
              response: toBinary(RegisterReleaseResponseSchema, response),
            },
          );
        } catch (error) {
          // Two identical requests raced: the loser returns the winner's stored response.
          if ((error as Error).name === "DuplicateRequest") {
            const winner = await replay(request.requestId, requestHash);
            if (winner) return winner;
          }
          throw error;
        }
        return response;
      },

      async getRelease(request: GetReleaseRequest) {
        const { release } = await loadRelease(store, request.releaseId);
        if (!release) throw new NotFound("release", request.releaseId);
        return create(GetReleaseResponseSchema, { release });
      },
    },
  };
}
