import { type GrpcServiceDefinition, startGrpcService } from "@rdm/runtime";
import { releaseServiceHandlers } from "./api/release-service.js";
import { ReleaseModelStore } from "./store/model-store.js";
import { ReleaseRepository } from "./store/release-repository.js";
import { releaseMigrations } from "./store/release-tables.js";

export interface ReleaseServiceOptions {
  /** The service's clock (deadlines, timestamps); tests inject one so they never sleep. */
  clock?: () => Date;
}

export function createReleaseService(options: ReleaseServiceOptions = {}): GrpcServiceDefinition {
  const clock = options.clock ?? (() => new Date());
  return {
    name: "release",
    defaultPort: 50051,
    migrations: releaseMigrations,
    services: ({ store, pool }) => [
      releaseServiceHandlers({
        store,
        pool,
        repository: new ReleaseRepository(store, pool),
        models: new ReleaseModelStore(store, pool),
        clock,
      }),
    ],
  };
}

export const releaseService: GrpcServiceDefinition = createReleaseService();

export const startReleaseService = (env: NodeJS.ProcessEnv = process.env, options: ReleaseServiceOptions = {}) =>
  startGrpcService(createReleaseService(options), env);
