import { runMain } from "@rdm/runtime";
import { startChangeService } from "./service.js";

await runMain("change", () => startChangeService(), { defaultMetricsPort: 9465 });
