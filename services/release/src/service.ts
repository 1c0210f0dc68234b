import { type GrpcServiceDefinition, startGrpcService } from "@rdm/runtime";
import { releaseServiceHandlers } from "./api/release-service.js";

export const releaseService: GrpcServiceDefinition = {
  name: "release",
  defaultPort: 50051,
  migrations: [
    {
      version: 1,
      name: "release keys",
      // Per-year counters for human-readable keys (REL-2026-0042); gaps are allowed.
      sql: "CREATE TABLE release_keys (year int PRIMARY KEY, last int NOT NULL)",
    },
  ],
  services: ({ store, pool }) => [releaseServiceHandlers({ store, pool })],
};

export const startReleaseService = (env: NodeJS.ProcessEnv = process.env) => startGrpcService(releaseService, env);
