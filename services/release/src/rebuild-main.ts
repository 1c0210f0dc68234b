import { rebuildTablesMain } from "@rdm/runtime";
import { createReleaseService } from "./service.js";

// `DATABASE_URL=<the release service's database> pnpm --filter @rdm/release rebuild-tables`
await rebuildTablesMain("release", () => createReleaseService());
