import { runMain } from "@rdm/runtime";
import { startConfigurationService } from "./service.js";

await runMain("configuration", () => startConfigurationService(), { defaultMetricsPort: 9466 });
