import type { Aggregate } from "@rdm/command-handler";
import { type EventStore, withTransaction } from "@rdm/eventstore";
import type pg from "pg";
import { changeRequests, freezeWindows, standardChangeTemplates } from "./aggregates.js";
import { changeCodec, type ServiceEvent } from "./event-codec.js";
import { saveChange, saveFreezeWindow, saveTemplate } from "./read-model.js";

const PAGE = 1000;

/**
 * Rebuilds the query tables from the event store: every stream folded again and upserted, in
 * one transaction. The tables are locked against the commands' upserts first, so a command
 * either committed before (its events are read here) or writes its own row after.
 * Returns how many rows of each kind were written.
 */
export async function rebuildQueryTables(
  pool: pg.Pool,
  store: EventStore,
): Promise<{ changes: number; freezeWindows: number; templates: number }> {
  return withTransaction(pool, async (client) => {
    await client.query("LOCK TABLE change_requests, freeze_windows, standard_change_templates IN EXCLUSIVE MODE");
    await client.query("TRUNCATE change_requests, freeze_windows, standard_change_templates");
    const states = new Map<string, { type: string; state: unknown }>();
    const aggregates: Record<string, Aggregate<unknown, ServiceEvent>> = {
      change: changeRequests as Aggregate<unknown, ServiceEvent>,
      freeze: freezeWindows as Aggregate<unknown, ServiceEvent>,
      template: standardChangeTemplates as Aggregate<unknown, ServiceEvent>,
    };
    // Within a stream, global positions follow versions (appends to a stream are serialized).
    for (let after = 0; ; ) {
      const page = await store.readAll({ after, limit: PAGE });
      for (const recorded of page) {
        const aggregate = aggregates[recorded.streamType];
        if (!aggregate) continue;
        const current = states.get(recorded.streamId)?.state ?? aggregate.initialState();
        states.set(recorded.streamId, {
          type: recorded.streamType,
          state: aggregate.evolve(current, changeCodec.decode(recorded)),
        });
      }
      const last = page.at(-1);
      if (!last || page.length < PAGE) break;
      after = last.globalPosition;
    }
    const counts = { changes: 0, freezeWindows: 0, templates: 0 };
    for (const { type, state } of states.values()) {
      const s = state as { change?: never; freeze?: never; template?: never };
      if (type === "change" && s.change) {
        await saveChange(client, s.change);
        counts.changes++;
      } else if (type === "freeze" && s.freeze) {
        await saveFreezeWindow(client, s.freeze);
        counts.freezeWindows++;
      } else if (type === "template" && s.template) {
        await saveTemplate(client, s.template);
        counts.templates++;
      }
    }
    return counts;
  });
}
