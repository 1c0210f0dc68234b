import { existsSync } from "node:fs";
import { request } from "node:http";
import { connect } from "node:net";
import { homedir } from "node:os";
import path from "node:path";

/**
 * True when a Docker engine answers `GET /_ping` within `timeoutMs`. Looks at DOCKER_HOST
 * (unix:// or tcp://), then the usual socket paths; never waits longer than the timeout.
 */
export async function dockerAvailable(timeoutMs = 1000): Promise<boolean> {
  const target = dockerTarget();
  if (!target) return false;
  if ("tls" in target) return tcpAnswers(target.host, target.port, timeoutMs);
  return new Promise<boolean>((resolve) => {
    const req = request({ ...target, path: "/_ping", method: "GET", timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", () => resolve(false));
    req.end();
  });
}

type DockerTarget = { socketPath: string } | { host: string; port: number } | { host: string; port: number; tls: true };

function tcpAnswers(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("timeout", () => done(false));
    socket.once("error", () => done(false));
  });
}

function dockerTarget(): DockerTarget | undefined {
  const dockerHost = process.env.DOCKER_HOST;
  if (dockerHost) {
    if (dockerHost.startsWith("unix://")) return { socketPath: dockerHost.slice("unix://".length) };
    if (dockerHost.startsWith("tcp://")) {
      const url = new URL(dockerHost.replace(/^tcp:/, "http:"));
      // A TLS-protected engine answers only with client certificates; testcontainers handles
      // those, so here a listening port is enough.
      if (process.env.DOCKER_TLS_VERIFY) return { host: url.hostname, port: Number(url.port || 2376), tls: true };
      return { host: url.hostname, port: Number(url.port || 2375) };
    }
    return undefined;
  }
  const candidates = [
    "/var/run/docker.sock",
    process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, "docker.sock") : "",
    path.join(homedir(), ".docker", "run", "docker.sock"),
    path.join(homedir(), ".docker", "desktop", "docker.sock"),
  ];
  const socketPath = candidates.find((p) => p && existsSync(p));
  return socketPath ? { socketPath } : undefined;
}
