import { rebuildTablesMain } from "@rdm/runtime";
import { changeServiceDefinition } from "./service.js";

// `DATABASE_URL=<the change service's database> pnpm --filter @rdm/change rebuild-tables`
await rebuildTablesMain("change", () => changeServiceDefinition());
