import { create, fromBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { NotFound } from "@rdm/grpc";
import { ReleaseSchema } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import * as api from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { encodePageToken, isIsoTimestamp, isUuid, pageCursor, pageTokenScope, rowsFitting } from "@rdm/runtime";
import type { ReleaseApiDeps, ReleaseHandlers } from "./release-rpc.js";

/** Listing releases and a release's notification deliveries. */
export function releaseListingHandlers(
  deps: ReleaseApiDeps,
): Pick<ReleaseHandlers, "listReleases" | "listNotificationDeliveries"> {
  const { pool, clock } = deps;
  return {
    async listReleases(request) {
      const pageSize = request.pageSize || 50;
      const scope = pageTokenScope("release.ListReleases", request);
      const where: string[] = [];
      const args: unknown[] = [];
      const add = (sql: string, ...values: unknown[]) => {
        args.push(...values);
        where.push(sql.replace(/\$(\d)/g, (_, n) => `$${args.length - values.length + Number(n)}`));
      };
      const after = pageCursor(request.pageToken, scope, isIsoTimestamp, isUuid);
      if (after) add("(registered_at, release_id) < ($1::timestamptz, $2::uuid)", ...after);
      if (request.phase) add("phase = $1", request.phase);
      if (request.type) add("type = $1", request.type);
      if (request.owner) add("owner = $1", request.owner);
      if (request.status) add("status = $1", request.status);
      if (request.overdueOnly) add("phase_due_at < $1", clock());
      if (request.overdueTasksOnly) add("overdue_tasks > 0");
      if (request.text) add("(key ILIKE $1 OR title ILIKE $1)", `%${request.text.replace(/[%_\\]/g, "\\$&")}%`);
      args.push(pageSize + 1);
      const { rows } = await pool.query<{ release_id: string; registered_at: Date; snapshot: Buffer }>(
        `SELECT release_id, registered_at, snapshot FROM release_index ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY registered_at DESC, release_id DESC LIMIT $${args.length}`,
        args,
      );
      // At most pageSize releases, and fewer when they would not fit one answer a client takes.
      const count = rowsFitting(rows.slice(0, pageSize).map((row) => row.snapshot.byteLength));
      const page = rows.slice(0, count);
      const last = page[page.length - 1];
      return create(api.ListReleasesResponseSchema, {
        releases: page.map((r) => fromBinary(ReleaseSchema, new Uint8Array(r.snapshot))),
        nextPageToken:
          rows.length > count && last ? encodePageToken(scope, last.registered_at.toISOString(), last.release_id) : "",
      });
    },

    async listNotificationDeliveries(request) {
      const known = await pool.query("SELECT 1 FROM release_index WHERE release_id = $1", [request.releaseId]);
      if (!known.rowCount) throw new NotFound("release", request.releaseId);
      const { rows } = await pool.query<{
        notification_id: string;
        trigger: string;
        recipients: string[];
        status: string;
        attempts: number;
        last_error: string;
        delivered_at: Date | null;
      }>(
        `SELECT notification_id, trigger, recipients, status, attempts, last_error, delivered_at
         FROM notification_deliveries WHERE release_id = $1 ORDER BY seq`,
        [request.releaseId],
      );
      return create(api.ListNotificationDeliveriesResponseSchema, {
        deliveries: rows.map((r) => ({
          notificationId: r.notification_id,
          trigger: r.trigger,
          recipients: r.recipients,
          status: r.status,
          attempts: r.attempts,
          lastError: r.last_error,
          ...(r.delivered_at ? { deliveredAt: timestampFromDate(r.delivered_at) } : {}),
        })),
      });
    },
  };
}
