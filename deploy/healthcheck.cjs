// Container health probe, run by the image's HEALTHCHECK as `node /app/healthcheck.cjs`.
// Exits 0 when the component in this container answers, 1 otherwise.
//   gateway:           GET /readyz on HTTP_PORT (default 8080)
//   every gRPC service: grpc.health.v1.Health/Check (service "") on GRPC_PORT, expects SERVING
// CommonJS on purpose: the deployed package is "type": "module", and .cjs keeps this file
// independent of that. Orchestrators with native probes (Kubernetes `grpc:` / `httpGet:`) do not
// need it.
"use strict";

const DEFAULT_PORTS = { release: 50051, change: 50052, configuration: 50053, deployment: 50054, gateway: 8080 };
const TIMEOUT_MS = Number(process.env.HEALTHCHECK_TIMEOUT_MS || 3000);
const service = process.env.RDM_SERVICE || "";

function fail(reason) {
  process.stderr.write(`unhealthy: ${reason}\n`);
  process.exit(1);
}

// Listening on all interfaces means loopback answers; a specific address must be dialled itself.
function dialHost(host) {
  if (!host || host === "0.0.0.0" || host === "::" || host === "[::]") return "127.0.0.1";
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

function checkHttp() {
  const port = Number(process.env.HTTP_PORT || DEFAULT_PORTS.gateway);
  const url = `http://${dialHost(process.env.HTTP_HOST)}:${port}/readyz`;
  fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) }).then(
    (res) => (res.ok ? process.exit(0) : fail(`${url} answered ${res.status}`)),
    (err) => fail(`${url}: ${err.message}`),
  );
}

function checkGrpc() {
  const grpc = require("@grpc/grpc-js");
  const port = Number(process.env.GRPC_PORT || DEFAULT_PORTS[service]);
  const target = `${dialHost(process.env.GRPC_HOST)}:${port}`;
  const client = new grpc.Client(target, grpc.credentials.createInsecure());
  const identity = (b) => b;
  // HealthCheckRequest{service: ""} encodes to zero bytes; HealthCheckResponse{status: SERVING}
  // is field 1 (varint) = 1, i.e. 0x08 0x01. No protobuf library needed.
  client.makeUnaryRequest(
    "/grpc.health.v1.Health/Check",
    identity,
    identity,
    Buffer.alloc(0),
    new grpc.Metadata(),
    { deadline: Date.now() + TIMEOUT_MS },
    (err, response) => {
      client.close();
      if (err) return fail(`${target}: ${err.code} ${err.details}`);
      if (response.length >= 2 && response[0] === 0x08 && response[1] === 0x01) return process.exit(0);
      fail(`${target}: status is not SERVING (${response.toString("hex")})`);
    },
  );
}

if (service === "gateway") checkHttp();
else if (service in DEFAULT_PORTS) checkGrpc();
else fail(`RDM_SERVICE must name a component (got "${service}")`);
