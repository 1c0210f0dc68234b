import { rebuildTablesMain } from "@rdm/runtime";
import { configurationServiceDefinition } from "./service.js";

// `DATABASE_URL=<the configuration service's database> pnpm --filter @rdm/configuration rebuild-tables`
await rebuildTablesMain("configuration", () => configurationServiceDefinition());
