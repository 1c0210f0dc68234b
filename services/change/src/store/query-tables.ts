import { entityRows, type QueryTables, streamRowsInBatches } from "@rdm/command-handler";
import { changeRequests, freezeWindows, standardChangeTemplates } from "./aggregates.js";
import { changeCodec, type ServiceEvent } from "./event-codec.js";
import { saveChanges, saveFreezeWindow, saveTemplate } from "./read-model.js";

/** The change service's query tables, as `rebuildQueryTables` (@rdm/command-handler) writes them again. */
export const changeQueryTables: QueryTables<ServiceEvent> = {
  tables: ["change_requests", "freeze_windows", "standard_change_templates"],
  codec: changeCodec,
  streams: {
    // The streams the service has most of: a thousand change requests a statement.
    change: streamRowsInBatches(changeRequests, async (client, streams) => {
      const changes = streams.flatMap(({ state }) => state.change ?? []);
      await saveChanges(client, changes);
      return changes.length;
    }),
    freeze: entityRows(freezeWindows, (s) => s.freeze, saveFreezeWindow),
    template: entityRows(standardChangeTemplates, (s) => s.template, saveTemplate),
  },
};
