import { meter, type ObservableResult } from "@rdm/observability";
import type pg from "pg";

/**
 * Reports a pool's use with the OpenTelemetry database client conventions:
 * `db.client.connection.count` by `db.client.connection.state` (idle, used),
 * `db.client.connection.max` and `db.client.connection.pending_requests` (callers waiting for a
 * connection), each labelled `db.client.connection.pool.name`. Returns what stops reporting.
 */
export function observePoolUse(pool: pg.Pool, poolName: string): () => void {
  const m = meter("@rdm/runtime");
  const name = { "db.client.connection.pool.name": poolName };
  const count = m.createObservableUpDownCounter("db.client.connection.count", {
    description: "Connections of the pool, by state (idle, used)",
    unit: "{connection}",
  });
  const max = m.createObservableUpDownCounter("db.client.connection.max", {
    description: "Most connections the pool opens",
    unit: "{connection}",
  });
  const pending = m.createObservableUpDownCounter("db.client.connection.pending_requests", {
    description: "Callers waiting for a connection of the pool",
    unit: "{request}",
  });
  const observeCount = (result: ObservableResult) => {
    result.observe(pool.idleCount, { ...name, "db.client.connection.state": "idle" });
    result.observe(pool.totalCount - pool.idleCount, { ...name, "db.client.connection.state": "used" });
  };
  const observeMax = (result: ObservableResult) => result.observe(pool.options.max ?? 10, name);
  const observePending = (result: ObservableResult) => result.observe(pool.waitingCount, name);
  count.addCallback(observeCount);
  max.addCallback(observeMax);
  pending.addCallback(observePending);
  return () => {
    count.removeCallback(observeCount);
    max.removeCallback(observeMax);
    pending.removeCallback(observePending);
  };
}
