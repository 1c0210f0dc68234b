import { runMain } from "@rdm/runtime";
import { startReleaseService } from "./service.js";

await runMain("release", () => startReleaseService(), { defaultMetricsPort: 9464 });
