import { accessSync, constants, readFileSync } from "node:fs";
import {
  status as GrpcStatus,
  type Server,
  type ServiceDefinition,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import type { Logger } from "@rdm/observability";
import { protoPath as healthProtoPath } from "grpc-health-check";
import { HEALTH_SERVICE } from "./health.js";

/**
 * Serves gRPC server reflection (v1 and v1alpha) for `services` and the health service from a
 * descriptor image. The image is parsed and indexed on the first reflection call, not at start:
 * that costs about 30 MB of memory that a service nobody inspects with grpcurl never needs.
 */
export function addLazyReflection(
  server: Pick<Server, "addService">,
  options: { imagePath: string; services: string[]; logger: Logger },
): void {
  const { imagePath, services, logger } = options;
  accessSync(imagePath, constants.R_OK); // a missing image stops the start, not the first call
  let handlers: Map<string, UntypedHandleCall> | undefined;
  const handlerOf = (path: string): UntypedHandleCall => {
    if (!handlers) {
      const loaded = new Map<string, UntypedHandleCall>();
      const image = protoLoader.loadFileDescriptorSetFromBuffer(readFileSync(imagePath));
      const healthDefinition = protoLoader.loadSync("health/v1/health.proto", {
        includeDirs: [healthProtoPath.replace(/health\/v1\/health\.proto$/, "")],
      });
      new ReflectionService({ ...image, ...healthDefinition }, { services: [...services, HEALTH_SERVICE] }).addToServer(
        { addService: (definition, implementation) => collect(definition, implementation, loaded) },
      );
      handlers = loaded;
    }
    const handler = handlers.get(path);
    if (!handler) throw new Error(`no reflection handler for ${path}`);
    return handler;
  };
  // An empty package gives the reflection services' definitions without indexing anything.
  new ReflectionService({}).addToServer({
    addService(definition: ServiceDefinition, placeholder: UntypedServiceImplementation) {
      const delegating: UntypedServiceImplementation = {};
      for (const [name, method] of Object.entries(definition)) {
        if (typeof placeholder[name] !== "function") continue;
        delegating[name] = ((call: { emit(event: "error", status: object): void }, callback: unknown) => {
          let handler: (call: unknown, callback: unknown) => void;
          try {
            handler = handlerOf(method.path) as typeof handler;
          } catch (error) {
            logger.error({ err: error, imagePath }, "server reflection could not load the descriptor image");
            call.emit("error", { code: GrpcStatus.INTERNAL, details: "server reflection is unavailable" });
            return;
          }
          handler(call, callback);
        }) as UntypedHandleCall;
      }
      server.addService(definition, delegating);
    },
  });
}

function collect(
  definition: ServiceDefinition,
  implementation: UntypedServiceImplementation,
  into: Map<string, UntypedHandleCall>,
): void {
  for (const [name, method] of Object.entries(definition)) {
    const handler = implementation[name];
    if (handler) into.set(method.path, handler);
  }
}
