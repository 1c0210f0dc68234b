import { rebuildTablesMain } from "@rdm/runtime";
import { deploymentServiceDefinition } from "./service.js";

// `DATABASE_URL=<the deployment service's database> pnpm --filter @rdm/deployment rebuild-tables`
await rebuildTablesMain("deployment", () => deploymentServiceDefinition());
