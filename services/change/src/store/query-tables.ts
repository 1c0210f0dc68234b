import { entityRows, type QueryTables } from "@rdm/command-handler";
import { changeRequests, freezeWindows, standardChangeTemplates } from "./aggregates.js";
import { changeCodec, type ServiceEvent } from "./event-codec.js";
import { saveChange, saveFreezeWindow, saveTemplate } from "./read-model.js";

/** The change service's query tables, as `rebuildQueryTables` (@rdm/command-handler) writes them again. */
export const changeQueryTables: QueryTables<ServiceEvent> = {
  tables: ["change_requests", "freeze_windows", "standard_change_templates"],
  codec: changeCodec,
  streams: {
    change: entityRows(changeRequests, (s) => s.change, saveChange),
    freeze: entityRows(freezeWindows, (s) => s.freeze, saveFreezeWindow),
    template: entityRows(standardChangeTemplates, (s) => s.template, saveTemplate),
  },
};
