import { type QueryTables, streamRows } from "@rdm/command-handler";
import { changeRequests, freezeWindows, standardChangeTemplates } from "./aggregates.js";
import { changeCodec, type ServiceEvent } from "./event-codec.js";
import { saveChange, saveFreezeWindow, saveTemplate } from "./read-model.js";

/** The change service's query tables, as `rebuildQueryTables` (@rdm/command-handler) writes them again. */
export const changeQueryTables: QueryTables<ServiceEvent> = {
  tables: ["change_requests", "freeze_windows", "standard_change_templates"],
  codec: changeCodec,
  streams: {
    change: streamRows(changeRequests, async (client, { change }) => {
      if (change) await saveChange(client, change);
      return change !== undefined;
    }),
    freeze: streamRows(freezeWindows, async (client, { freeze }) => {
      if (freeze) await saveFreezeWindow(client, freeze);
      return freeze !== undefined;
    }),
    template: streamRows(standardChangeTemplates, async (client, { template }) => {
      if (template) await saveTemplate(client, template);
      return template !== undefined;
    }),
  },
};
