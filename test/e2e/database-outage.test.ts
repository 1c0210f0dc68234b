// Freeze PostgreSQL under a running release service and gateway, then stop it and start it again:
// both processes stay up, report not-ready and answer UNAVAILABLE / 503 at once meanwhile, and afterwards
// serve commands, publish and project events again by themselves, each event once. The test runs
// a PostgreSQL of its own (under a launcher process, so a killed test worker does not leave it
// running), so the shared test server is not disturbed.

import type { ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { databaseUrl, freePort, type StartedPostgres, startEmbeddedPostgresProcess } from "@rdm/embedded";
import { checkHealth, createGrpcClient } from "@rdm/grpc";
import { RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { ReleaseService } from "@rdm/proto/gen/rdm/release/v1/release_service_pb.js";
import { testConsumerTimings, testKafkaBrokers, uniqueId, waitFor } from "@rdm/testkit";
import { Kafka, logLevel } from "kafkajs";
import { e2eStack } from "./harness.js";

const stack = e2eStack("e2e-outage");
afterAll(() => stack.stop());
const run = stack.spawnService;
const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

/** grpc.health.v1 Check of the whole server, within 2 s. */
const healthStatus = (address: string) => checkHealth(address, "", 2_000);

/** Stops (SIGSTOP) or resumes (SIGCONT) every process of a server: it keeps its sockets and answers nothing. */
async function signalServer(dataDir: string, signal: "SIGSTOP" | "SIGCONT"): Promise<void> {
  const postmaster = Number((await readFile(path.join(dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
  const children = (await readFile(`/proc/${postmaster}/task/${postmaster}/children`, "utf8")).split(" ");
  for (const pid of [postmaster, ...children.filter(Boolean).map(Number)]) process.kill(pid, signal);
}

test("losing PostgreSQL: not ready and UNAVAILABLE meanwhile, no crash, and everything resumes", async () => {
  const folder = await mkdtemp(path.join(tmpdir(), "rdm-outage-"));
  const postgresOptions = {
    dataDir: path.join(folder, "pg"),
    port: await freePort(),
    settings: { fsync: "off" },
    initdbFlags: ["--no-sync"],
  };
  let postgres: StartedPostgres = await startEmbeddedPostgresProcess(postgresOptions);
  const brokers = (await testKafkaBrokers()).join(",");
  const topicPrefix = stack.topicPrefix;
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  // On a PostgreSQL of this test's own, which it stops and starts again.
  const quiet = { LOG_LEVEL: "fatal" };
  const release = run(
    "release",
    await stack.env("release", {
      databaseUrl: databaseUrl(postgres.adminUrl, "outage_release"),
      port: grpcPort,
      env: quiet,
    }),
  );
  const gateway = run(
    "gateway",
    await stack.env("gateway", {
      databaseUrl: databaseUrl(postgres.adminUrl, "outage_gateway"),
      port: httpPort,
      env: quiet,
    }),
  );
  const token = await stack.token("kim", ["release-manager"]);
  const client = createGrpcClient(ReleaseService, `127.0.0.1:${grpcPort}`, { token });
  const register = (requestId: string) =>
    client.registerRelease(
      { requestId, title: `Outage ${requestId.slice(0, 8)}`, type: ReleaseType.MINOR, owner: "kim" },
      { deadline: 10_000 },
    );
  const gatewayGet = (url: string) =>
    fetch(`http://127.0.0.1:${httpPort}${url}`, { headers: { authorization: `Bearer ${token}` } });
  const projected = (releaseId: string) =>
    waitFor(async () => (await gatewayGet(`/v1/releases/${releaseId}`)).status === 200, {
      timeoutMs: 60_000,
      description: `release ${releaseId} in the gateway`,
    });

  /** Commands whose outcome was unknown or refused: retried with their request ids at the end. */
  const requestIds: string[] = [];
  try {
    const before = await waitFor(() => register(randomUUID()), { timeoutMs: 60_000, description: "release serving" });
    const beforeId = before.release?.releaseId as string;
    await projected(beforeId);
    await waitFor(async () => (await healthStatus(`127.0.0.1:${grpcPort}`)) === "SERVING", {
      timeoutMs: 15_000,
      description: "release health SERVING before the outage",
    });

    // A server that hangs rather than refuses: the probes still answer at once (a query of its
    // own would wait for the pool's 30 s connection timeout), not ready; liveness is unaffected.
    const probe = (url: string) => fetch(`http://127.0.0.1:${httpPort}${url}`, { signal: AbortSignal.timeout(2_000) });
    await signalServer(postgres.dataDir, "SIGSTOP");
    try {
      // A command sent before the watch noticed waits on the frozen server: it is answered
      // UNAVAILABLE once the service stops serving (within 2.5 s), not held until its deadline
      // (10 s) or the end of the outage. Retried with its request id below.
      const inFlight = randomUUID();
      requestIds.push(inFlight);
      const heldUp = register(inFlight).catch((error: unknown) => error);
      await waitFor(async () => (await healthStatus(`127.0.0.1:${grpcPort}`)) === "NOT_SERVING", {
        timeoutMs: 15_000,
        description: "release health NOT_SERVING while the database hangs",
      });
      // Answered as a call in flight (not refused on entry, which would say "not serving now").
      expect(await heldUp).toMatchObject({
        code: grpc.status.UNAVAILABLE,
        details: expect.stringMatching(/stopped answering while the call was in flight/),
      });
      await waitFor(async () => (await probe("/readyz")).status === 503, {
        timeoutMs: 15_000,
        description: "gateway not ready while the database hangs",
      });
      expect((await probe("/healthz")).status).toBe(200);
      // A command is refused at once too (UNAVAILABLE, which clients retry), rather than wait for
      // a pool connection; retried with its request id after the outage below.
      const refused = randomUUID();
      requestIds.push(refused);
      await expect(
        client.registerRelease(
          { requestId: refused, title: "Refused while frozen", type: ReleaseType.MINOR, owner: "kim" },
          { deadline: 2_000 },
        ),
      ).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
      // The views answer 503 at once too, rather than wait for the database (with a token).
      const view = await fetch(`http://127.0.0.1:${httpPort}/v1/releases/${beforeId}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: AbortSignal.timeout(2_000),
      });
      expect({ status: view.status, body: await view.json() }).toMatchObject({
        status: 503,
        body: { status: 503, detail: "database unavailable" },
      });
    } finally {
      await signalServer(postgres.dataDir, "SIGCONT");
    }
    await waitFor(async () => (await probe("/readyz")).status === 200, {
      timeoutMs: 15_000,
      description: "gateway ready once the database answers",
    });

    // Four writers keep transactions open while the server goes down (checked-out connections).
    let writing = true;
    const writers = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (writing) {
          const id = randomUUID();
          requestIds.push(id);
          // Outcome unknown when the database goes: retried with the same request id below.
          await register(id).catch(() => undefined);
        }
      }),
    );
    await waitFor(() => requestIds.length >= 40, { timeoutMs: 30_000, description: "writers under way" });
    await postgres.stop();
    writing = false;
    await writers;
    await waitFor(async () => (await healthStatus(`127.0.0.1:${grpcPort}`)) === "NOT_SERVING", {
      timeoutMs: 15_000,
      description: "release health NOT_SERVING",
    });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 503, {
      timeoutMs: 15_000,
      description: "gateway not ready",
    });
    const duringOutage = randomUUID();
    requestIds.push(duringOutage);
    await expect(register(duringOutage)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect((await gatewayGet(`/v1/releases/${beforeId}`)).status).toBe(503);
    expect([alive(release), alive(gateway)]).toEqual([true, true]);

    postgres = await startEmbeddedPostgresProcess(postgresOptions);
    await waitFor(async () => (await healthStatus(`127.0.0.1:${grpcPort}`)) === "SERVING", {
      timeoutMs: 15_000,
      description: "release health SERVING again",
    });
    await waitFor(async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).status === 200, {
      timeoutMs: 15_000,
      description: "gateway ready again",
    });
    // Every command whose outcome was unknown or refused, retried with its request id, and a new one.
    const releaseIds = new Set([beforeId]);
    for (const id of [...requestIds, randomUUID()]) {
      releaseIds.add((await register(id)).release?.releaseId as string);
    }
    expect(releaseIds.size).toBe(requestIds.length + 2);
    for (const id of releaseIds) await projected(id);
    expect([alive(release), alive(gateway)]).toEqual([true, true]);

    // Nothing lost: every registration reaches the topic in spite of the outage. The relay is
    // at least once (packages/relay): a batch sent just before the database went, whose checkpoint
    // could not be written, is sent again, so a release may appear twice, but only as the same
    // event (same ce_id), never as a second registration.
    const kafka = new Kafka({ clientId: "outage-test", brokers: brokers.split(","), logLevel: logLevel.NOTHING });
    const consumer = kafka.consumer({ groupId: uniqueId("outage-reader"), ...testConsumerTimings });
    const registrations = new Map<string, Set<string>>(); // release id -> event ids seen
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: `${topicPrefix}${RELEASE_EVENTS_TOPIC}`, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          if (String(message.headers?.ce_type) !== "rdm.release.v1.ReleaseRegistered") return;
          const releaseId = String(message.headers?.ce_subject);
          const seen = registrations.get(releaseId) ?? new Set<string>();
          registrations.set(releaseId, seen.add(String(message.headers?.ce_id)));
        },
      });
      await waitFor(() => [...releaseIds].every((id) => registrations.has(id)), {
        timeoutMs: 30_000,
        description: "every registration on the topic",
      });
    } finally {
      await consumer.disconnect();
    }
    expect([...registrations.keys()].sort()).toEqual([...releaseIds].sort());
    expect([...registrations.values()].filter((eventIds) => eventIds.size !== 1)).toEqual([]);
  } finally {
    client.close();
    for (const child of [release, gateway]) child.kill("SIGTERM");
    await waitFor(() => !alive(release) && !alive(gateway), { timeoutMs: 20_000, description: "services stopped" });
    await postgres.stop();
    await rm(folder, { recursive: true, force: true });
    await rm(postgres.dataDir, { recursive: true, force: true });
  }
}, 180_000);
