import {
  credentials,
  status as GrpcStatus,
  makeGenericClientConstructor,
  type Server,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { service as healthServiceDefinition } from "grpc-health-check";

export const HEALTH_SERVICE = "grpc.health.v1.Health";

export type ServingStatus = "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";
type Watch = ServerWritableStream<{ service: string }, { status: ServingStatus }>;

/**
 * grpc.health.v1 (Check, Watch, List) over the health.proto definition shipped with
 * grpc-health-check. Ours rather than its HealthImplementation because shutdown must end
 * open Watch streams, or a graceful server shutdown would wait on them forever.
 */
export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watches = new Map<string, Set<Watch>>();

  constructor(initial: Record<string, boolean>) {
    for (const [name, serving] of Object.entries(initial)) this.statuses.set(name, serving ? "SERVING" : "NOT_SERVING");
  }

  setServing(service: string, serving: boolean): void {
    const status: ServingStatus = serving ? "SERVING" : "NOT_SERVING";
    this.statuses.set(service, status);
    for (const watch of this.watches.get(service) ?? []) watch.write({ status });
  }

  /** Whether a service (full name) and the server as a whole ("") both say SERVING. */
  isServing(service: string): boolean {
    return this.statuses.get("") !== "NOT_SERVING" && this.statuses.get(service) !== "NOT_SERVING";
  }

  /** Marks everything NOT_SERVING, tells every watcher, then ends their streams. */
  stopAll(): void {
    for (const name of this.statuses.keys()) this.setServing(name, false);
    for (const set of this.watches.values()) for (const watch of set) watch.end();
    this.watches.clear();
  }

  addToServer(server: Server): void {
    server.addService(healthServiceDefinition, {
      check: (call: ServerUnaryCall<{ service: string }, unknown>, callback: sendUnaryData<unknown>) => {
        const status = this.statuses.get(call.request.service);
        if (status) callback(null, { status });
        else {
          const error: Partial<ServiceError> = {
            code: GrpcStatus.NOT_FOUND,
            details: `health status unknown for service "${call.request.service}"`,
          };
          callback(error);
        }
      },
      watch: (call: Watch) => {
        const name = call.request.service;
        const set = this.watches.get(name) ?? new Set<Watch>();
        this.watches.set(name, set);
        set.add(call);
        call.on("cancelled", () => set.delete(call));
        call.write({ status: this.statuses.get(name) ?? "SERVICE_UNKNOWN" });
      },
      list: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        callback(null, {
          statuses: Object.fromEntries([...this.statuses].map(([name, status]) => [name, { status }])),
        });
      },
    });
  }
}

/**
 * grpc.health.v1 Check at `address` (host:port) of `service`, or of the server as a whole (""):
 * its status, or the gRPC error (NOT_FOUND for a service the server does not know).
 */
export function checkHealth(address: string, service = "", deadlineMs = 5_000): Promise<ServingStatus> {
  const Health = makeGenericClientConstructor(healthServiceDefinition, "Health");
  const client = new Health(address, credentials.createInsecure()) as unknown as {
    check(
      request: { service: string },
      options: { deadline: Date },
      callback: (error: ServiceError | null, response: { status: ServingStatus }) => void,
    ): void;
    close(): void;
  };
  return new Promise<ServingStatus>((resolve, reject) =>
    client.check({ service }, { deadline: new Date(Date.now() + deadlineMs) }, (error, response) =>
      error ? reject(error) : resolve(response.status),
    ),
  ).finally(() => client.close());
}
