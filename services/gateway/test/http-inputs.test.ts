// The gateway's HTTP read side over its own projection tables, rows written directly (no broker):
// what the route schemas let through but PostgreSQL cannot take is a 400 problem, not a 500;
// date-times are instants whatever their offset; page tokens walk every row once; changes that
// share a key still collide; Last-Event-ID resumes an event stream where the client left it.
import { randomUUID } from "node:crypto";
import { type ClientRequest, get as httpGet, type IncomingMessage } from "node:http";
import { create, toBinary } from "@bufbuild/protobuf";
import { PermanentError, RELEASE_EVENTS_TOPIC } from "@rdm/messaging";
import { createLogger } from "@rdm/observability";
import { ReleaseRegisteredSchema } from "@rdm/proto/gen/rdm/release/v1/events_pb.js";
import { ReleasePhase, ReleaseType } from "@rdm/proto/gen/rdm/release/v1/release_pb.js";
import { encodePageToken, openDatabase, pageTokenScope } from "@rdm/runtime";
import { createTestDatabase, type TestDatabase, uniqueId } from "@rdm/testkit";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { emptyPlan } from "../src/projections/deployment-plans/plan.js";
import { projectionHandler } from "../src/projections/projection.js";
import { RELEASE_HISTORY_CHANNEL, releaseProjection } from "../src/projections/releases/projection.js";
import { migrateGateway } from "../src/service.js";
import { listeningGateway, type TestGateway } from "./gateway-app.js";

let db: TestDatabase;
let pool: pg.Pool;
let gateway: TestGateway;
let app: FastifyInstance;
let gatewayUrl: string;
let bearer: string;

beforeAll(async () => {
  db = await createTestDatabase("gateway_http");
  pool = await openDatabase(db.url);
  await migrateGateway(pool, createLogger("gateway", "warn"));
  gateway = await listeningGateway(pool);
  ({ app, url: gatewayUrl, bearer } = gateway);
});

afterAll(async () => {
  await app?.close();
  await pool?.end();
  await db?.drop();
});

/** A JSON answer; an event stream (a request that should have been refused) is not read, so it cannot hang. */
async function get(path: string, headers: Record<string, string> = {}) {
  const response = await fetch(`${gatewayUrl}${path}`, { headers: { authorization: bearer, ...headers } });
  const contentType = response.headers.get("content-type");
  const json = /^application\/(problem\+)?json/.test(contentType ?? "");
  if (!json) await response.body?.cancel();
  return { status: response.status, contentType, body: json ? await response.json() : undefined };
}

/** A page token as the gateway writes them for `list` unfiltered, with whatever sort key and id a client may forge. */
const pageToken = (list: string, sortKey: string, id: string) =>
  encodePageToken(pageTokenScope(`gateway.GET ${list}`, {}), sortKey, id);

const badRequest = { type: "about:blank", title: "Bad Request", status: 400, detail: expect.any(String) };

async function insertChange(change: {
  id?: string;
  key: string;
  ciIds: string[];
  start: string;
  end: string;
  state?: string;
  rejectionReason?: string;
}) {
  const id = change.id ?? randomUUID();
  await pool.query(
    `INSERT INTO change_view (change_request_id, key, type, state, title, description, justification, requester,
       affected_ci_ids, environments, implementation_plan, test_plan, backout_plan, impact, urgency, risk, board,
       window_start, window_end, linked_release_id, template_id, raised_at, updated_at, version, rejection_reason)
     VALUES ($1, $2, 'NORMAL', $6, 'a change', '', 'needed', 'carl', $3, '{production}', 'apply', '',
       'revert', 'MEDIUM', 'HIGH', 'MEDIUM', 'CAB', $4, $5, '', '', now(), now(), 5, $7)`,
    [id, change.key, change.ciIds, change.start, change.end, change.state ?? "SCHEDULED", change.rejectionReason ?? ""],
  );
  return id;
}

describe("inputs PostgreSQL cannot take are 400 problems, not 500s", () => {
  const id = randomUUID();
  test.each([
    ["a urn:uuid: release id", `/v1/releases/urn:uuid:${id}`],
    ["a urn:uuid: release id (history)", `/v1/releases/urn:uuid:${id}/history`],
    ["a urn:uuid: change id", `/v1/changes/urn:uuid:${id}`],
    ["a urn:uuid: release id for the event stream", `/v1/releases/events?releaseId=urn:uuid:${id}`],
    ["an event stream start beyond what a seq can be", "/v1/releases/events?after=100000000000000000000"],
    ["an event stream start that is infinite as a number", "/v1/releases/events?after=1e400"],
    ["an event stream start in exponent notation", "/v1/releases/events?after=1e3"],
    ["an event stream start with a fraction", "/v1/releases/events?after=1.5"],
    ["a negative event stream start", "/v1/releases/events?after=-1"],
    ["an event stream start that is not a number", "/v1/releases/events?after=abc"],
    ["an empty event stream start", "/v1/releases/events?after="],
    ["an infinite page size", "/v1/changes?pageSize=1e400"],
    ["a page size with a fraction", "/v1/cmdb/items?pageSize=1.5"],
    ["an infinite impact depth", `/v1/cmdb/items/ci-${id}/impact?maxDepth=1e400`],
    ["NUL in a path parameter", "/v1/cmdb/items/ci%00one"],
    ["NUL in a change search", "/v1/changes?q=a%00b"],
    ["NUL in a CMDB search", "/v1/cmdb/items?q=a%00b"],
    ["NUL in a release owner", "/v1/releases?owner=a%00b"],
    ["NUL in a page token", `/v1/cmdb/items?pageToken=${pageToken("/v1/cmdb/items", "a\u0000", "b")}`],
    // Streams too, before they answer 200: their first read comes after (it met the refusal there).
    ["NUL in an event stream filter", "/v1/audit/events?after=0&actor=a%00b"],
    ["NUL in an event stream's path", "/v1/environments/a%00b/inventory/events"],
    ["NUL in a view stream filter", "/v1/views/events?view=inventory&environment=%00"],
    // A typo would stream nothing, for ever.
    ["a deployment stream's release id that is no uuid", "/v1/deployments/events?releaseId=zzz"],
    ["an empty release id of a deployment stream", "/v1/deployments/events?releaseId="],
    ["a deployment stream's environment no environment can be named", "/v1/deployments/events?environment=NO%20SUCH"],
    ["an inventory stream of a name no environment can have", "/v1/environments/NOSUCH/inventory/events"],
    ["NUL in a KPI service", "/v1/kpis?service=%00"],
    [
      "a page token time Date.parse takes and PostgreSQL does not",
      `/v1/releases?pageToken=${pageToken("/v1/releases", "1", id)}`,
    ],
    [
      "a page token time before PostgreSQL's range",
      `/v1/changes?pageToken=${pageToken("/v1/changes", "-271821-04-20T00:00:00.000Z", id)}`,
    ],
  ])("%s", async (_, path) => {
    const { status, contentType, body } = await get(path);
    expect({ status, contentType, body }).toEqual({
      status: 400,
      contentType: "application/problem+json; charset=utf-8",
      body: badRequest,
    });
  });

  test("an integer past its bound in many digits is refused naming the bound; leading zeros are digits too", async () => {
    const detail = async (path: string) => (await get(path)).body.detail;
    expect(await detail("/v1/releases/events?after=99999999999999999999")).toBe(
      "querystring/after must be <= 9007199254740991",
    );
    expect(await detail("/v1/changes?pageSize=12345678901234567")).toBe("querystring/pageSize must be <= 200");
    expect(await detail("/v1/changes?pageSize=-12345678901234567")).toBe("querystring/pageSize must be >= 1");
    expect(await detail("/v1/changes?pageSize=1e3")).toBe(
      "querystring/pageSize must be an integer written in decimal digits",
    );
    const padded = await get("/v1/changes?pageSize=000000000000000001");
    expect([padded.status, padded.body.changes.length <= 1]).toEqual([200, true]);
  });

  test("the calendar leaves out rejected and cancelled changes, and those closed after their rejection", async () => {
    const [start, end] = ["2032-03-01T08:00:00Z", "2032-03-01T10:00:00Z"];
    const ids: Record<string, string> = {};
    for (const [state, rejectionReason] of [
      ["SCHEDULED", ""],
      ["CLOSED", ""],
      ["REJECTED", "too risky"],
      ["CANCELLED", ""],
      ["CLOSED", "too risky"],
    ] as const) {
      const key = `CHG-CAL-${randomUUID().slice(0, 8)}`;
      ids[`${state} ${rejectionReason}`] = await insertChange({ key, ciIds: [], start, end, state, rejectionReason });
    }
    const { body } = await get("/v1/calendar?from=2032-03-01T00:00:00Z&to=2032-03-02T00:00:00Z");
    expect(body.changes.map((c: { changeRequestId: string }) => c.changeRequestId).sort()).toEqual(
      [ids["SCHEDULED "], ids["CLOSED "]].sort(),
    );
  });

  test("enum filters: a name that is no value (the gRPC spelling included) is 400, not an empty list", async () => {
    const key = `CHG-ENUM-${randomUUID().slice(0, 8)}`;
    const ci = `ci-${randomUUID()}`;
    await insertChange({ key, ciIds: [ci], start: "2031-01-01T00:00:00Z", end: "2031-01-01T01:00:00Z" });
    const keys = async (query: string) =>
      ((await get(`/v1/changes?ciId=${ci}&${query}`)).body.changes as { key: string }[]).map((c) => c.key);
    expect(await keys("state=scheduled,DRAFT&type=Normal")).toEqual([key]);
    expect(await keys("state=DRAFT")).toEqual([]);
    for (const path of [
      "/v1/changes?state=SCHEDULED,PLANNED",
      "/v1/changes?state=CHANGE_STATE_SCHEDULED",
      "/v1/changes?type=URGENT",
      "/v1/releases?phase=RELEASE_PHASE_APPROVAL",
    ]) {
      expect({ path, ...(await get(path)) }).toMatchObject({ path, status: 400, body: badRequest });
    }
    expect((await get("/v1/releases?phase=APPROVAL")).status).toBe(200);
  });

  test.each(["/v1/releases?phase=BOGUS", "/v1/kpis?period=decade"])("%s names the values it takes", async (path) => {
    const { status, body } = await get(path);
    expect({ status, body }).toMatchObject({ status: 400, body: badRequest });
    expect(body.detail).toMatch(/allowed values \(\w+(, \w+)+\)$/);
  });

  test.each([
    "/v1/audit?release=rel-1",
    "/v1/audit?change=CHG-1",
    "/v1/audit/events?release=rel-1",
    "/v1/views/events?release=rel-1",
    "/v1/deployments?releaseId=rel-1",
    "/v1/changes?linkedReleaseId=rel-1",
  ])("%s: an id filter that is no UUID is 400, as in the path forms, not an empty list", async (path) => {
    const { status, body } = await get(path);
    expect({ status, body }).toMatchObject({ status: 400, body: badRequest });
    expect(body.detail).toMatch(/^querystring\/\w+ must be a UUID$/);
  });

  test.each(["/v1/changes", "/v1/calendar"])("%s refuses a window whose end is not after its start", async (route) => {
    for (const to of ["2031-01-01T00:00:00Z", "2030-12-31T00:00:00Z"]) {
      const { status, body } = await get(`${route}?from=2031-01-01T00:00:00Z&to=${to}`);
      expect({ status, body }).toEqual({ status: 400, body: { ...badRequest, detail: "to must be after from" } });
    }
  });

  test("a NUL is named where it is, in a page token too", async () => {
    expect((await get("/v1/changes?q=a%00b")).body.detail).toBe("querystring/q must not contain a NUL character");
    expect((await get("/v1/cmdb/items/ci%00one")).body.detail).toBe("params/id must not contain a NUL character");
    const { body } = await get(`/v1/cmdb/items?pageToken=${pageToken("/v1/cmdb/items", "a\u0000", "b")}`);
    expect(body.detail).toBe("pageToken is not valid");
  });

  test.each(["-1", "abc", "1.5", "1e3", "100000000000000000000"])("Last-Event-ID %j", async (lastEventId) => {
    const { status, contentType, body } = await get("/v1/releases/events", { "last-event-id": lastEventId });
    expect({ status, contentType, body }).toEqual({
      status: 400,
      contentType: "application/problem+json; charset=utf-8",
      body: { ...badRequest, detail: "Last-Event-ID must be the id of an event of this stream" },
    });
  });
});

test.each(["bearer", "BEARER", "Bearer", "bEaReR"])(
  "the %s scheme is accepted: auth schemes are case-insensitive (RFC 7235)",
  async (scheme) => {
    const { status } = await get("/v1/releases", { authorization: bearer.replace(/^Bearer /, `${scheme} `) });
    expect(status).toBe(200);
  },
);

test.each(["Basic dmVyYTpwdw==", "Bearer", "Bearertoken", ""])("authorization %j is 401", async (authorization) => {
  const { status } = await get("/v1/releases", { authorization });
  expect(status).toBe(401);
});

describe("an unknown path authenticates first, so routes are not revealed to anonymous callers", () => {
  test.each(["/v1/nothing-here", "/nothing-here", "/v1/releases/x/unknown"])("%s", async (path) => {
    const anonymous = await fetch(`${gatewayUrl}${path}`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("www-authenticate")).toBe("Bearer");
    const forged = await fetch(`${gatewayUrl}${path}`, { headers: { authorization: "Bearer not-a-token" } });
    expect(forged.status).toBe(401);
    const writer = await gateway.token("exe", ["executor"]);
    const refused = await fetch(`${gatewayUrl}${path}`, { headers: { authorization: `Bearer ${writer}` } });
    expect(refused.status).toBe(403);
    // Worded as the gRPC services word it: admin among the roles that would do, and the caller's.
    expect((await refused.json()).detail).toMatch(
      /^requires one of the roles: viewer, .*, admin \(caller has: executor\)$/,
    );
    const reader = await fetch(`${gatewayUrl}${path}`, { headers: { authorization: bearer } });
    expect(reader.status).toBe(404);
    expect(await reader.json()).toMatchObject({ status: 404, title: "Not Found" });
  });

  test("a long path parameter reaches its route: looked up (404) or refused by the route's schema (400)", async () => {
    const { status, body } = await get(`/v1/environments/${"e".repeat(63)}/inventory`);
    expect({ status, body }).toMatchObject({ status: 404, body: { status: 404, title: "Not Found" } });
    // 600 characters as sent: past the router's default limit of 100, the route's schema refuses it.
    expect(await get(`/v1/environments/${"%C3%A9".repeat(100)}/inventory`)).toMatchObject({
      status: 400,
      body: badRequest,
    });
    expect(await get(`/v1/cmdb/items/ci-${"x".repeat(300)}`)).toMatchObject({ status: 400, body: badRequest });
  });

  test("headers larger than the server takes: 431 as a problem, not the framework's own body", async () => {
    const { status, contentType, body } = await get("/v1/releases", { "x-filler": "x".repeat(20_000) });
    expect({ status, contentType, body }).toEqual({
      status: 431,
      contentType: "application/problem+json",
      body: { type: "about:blank", title: "Request Header Fields Too Large", status: 431, detail: expect.any(String) },
    });
  });

  test("a URL the router cannot take is a problem answer, not the framework's own body", async () => {
    expect(await get("/v1/releases/%E0%A4%A")).toEqual({
      status: 400,
      contentType: "application/problem+json; charset=utf-8",
      body: badRequest,
    });
    expect(await get(`/v1/cmdb/items/${"x".repeat(3000)}`)).toEqual({
      status: 414,
      contentType: "application/problem+json; charset=utf-8",
      body: { type: "about:blank", title: "URI Too Long", status: 414, detail: expect.any(String) },
    });
  });

  test("a route's path asked with a method it does not take is 405 with Allow, after authentication", async () => {
    const at = (path: string, method: string, authorization?: string) =>
      fetch(`${gatewayUrl}${path}`, { method, headers: authorization ? { authorization } : {} });
    for (const path of ["/v1/releases", `/v1/releases/${randomUUID()}`, "/v1/releases?pageSize=5", "/docs/json"]) {
      for (const method of ["POST", "PUT", "PATCH", "DELETE"]) {
        expect((await at(path, method)).status).toBe(401);
        const answer = await at(path, method, bearer);
        expect({ status: answer.status, allow: answer.headers.get("allow"), body: await answer.json() }).toEqual({
          status: 405,
          allow: "GET, HEAD",
          body: {
            type: "about:blank",
            title: "Method Not Allowed",
            status: 405,
            detail: expect.stringContaining(method),
          },
        });
      }
    }
    // A path no route has stays 404 whatever the method.
    expect((await at("/v1/releases/x/unknown", "POST", bearer)).status).toBe(404);
  });

  test("a body the gateway cannot parse is the client's error (400, 413), never a 500", async () => {
    const send = (body: string, headers: Record<string, string> = {}) =>
      fetch(`${gatewayUrl}/v1/releases`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      });
    for (const [body, status] of [
      ["{", 400],
      ["", 400],
      [`{"a":"${"x".repeat(2 * 1024 * 1024)}"}`, 413],
    ] as const) {
      const answer = await send(body);
      expect({ status: answer.status, type: answer.headers.get("content-type") }).toEqual({
        status,
        type: "application/problem+json; charset=utf-8",
      });
      expect(await answer.json()).toMatchObject({ status, detail: expect.any(String) });
    }
  });

  test.each(["/v1/releases/events", "/v1/deployments/events", "/v1/audit/events"])(
    "HEAD %s answers the stream's headers and ends",
    async (path) => {
      const answer = await fetch(`${gatewayUrl}${path}`, { method: "HEAD", headers: { authorization: bearer } });
      expect([answer.status, answer.headers.get("content-type")]).toEqual([200, "text/event-stream"]);
      expect(await answer.text()).toBe("");
    },
  );

  test("the public probes still answer without a token", async () => {
    expect((await fetch(`${gatewayUrl}/healthz`)).status).toBe(200);
  });
});

test("an event with a NUL in its text is refused for the dead-letter topic, as every service's consumers refuse it", async () => {
  const releaseId = randomUUID();
  const registered = create(ReleaseRegisteredSchema, {
    releaseId,
    key: `REL-2026-${uniqueId("nul")}`,
    title: "line1\u0000line2",
    description: "\u0000",
    stakeholders: ["ann\u0000"],
    type: ReleaseType.MINOR,
    owner: "olivia",
    phase: ReleasePhase.REGISTRATION,
    metadata: { eventId: randomUUID(), actor: "olivia", streamId: releaseId, streamVersion: 1n },
  });
  const event = {
    id: registered.metadata?.eventId as string,
    type: ReleaseRegisteredSchema.typeName,
    source: "rdm/release",
    subject: releaseId,
    time: new Date(),
    data: toBinary(ReleaseRegisteredSchema, registered),
  };
  const tx = await pool.connect();
  try {
    await tx.query("BEGIN");
    const projected = projectionHandler([releaseProjection], "")(event, tx, { topic: RELEASE_EVENTS_TOPIC });
    await expect(projected).rejects.toThrow(PermanentError);
    await expect(projected).rejects.toThrow(/title: must not contain control characters/);
  } finally {
    await tx.query("ROLLBACK");
    tx.release();
  }
  expect((await get(`/v1/releases/${releaseId}`)).status).toBe(404);
});

test("from and to are instants: an offset beyond ±15:59 filters like any other; the year 0000 is outside every instant's range", async () => {
  const ciId = uniqueId("ci-offsets");
  const id = await insertChange({
    key: "CHG-2032-0001",
    ciIds: [ciId],
    start: "2032-05-01T20:00:00Z",
    end: "2032-05-01T22:00:00Z",
  });
  const listed = async (query: string) => {
    const { status, body } = await get(`/v1/changes?ciId=${ciId}&${query}`);
    expect(status).toBe(200);
    return (body.changes as { changeRequestId: string }[]).map((c) => c.changeRequestId);
  };
  // 2032-05-02T19:30+23:00 is 2032-05-01T20:30Z, inside the window; 21:00+23:00 is its end.
  expect(await listed(`from=${encodeURIComponent("2032-05-02T19:30:00+23:00")}`)).toEqual([id]);
  expect(await listed(`from=${encodeURIComponent("2032-05-02T21:00:00+23:00")}`)).toEqual([]);
  // Years 0001..9999 (UTC), as everywhere: the format takes 0000, which names an instant of 1 BC.
  for (const query of [
    "from=0000-01-01T00:00:00Z",
    "to=0000-12-31T23:59:59Z",
    `from=${encodeURIComponent("0001-01-01T00:30:00+01:00")}`,
    "from=9999-12-31T23:59:59Z&to=9999-12-31T23:59:59.9999Z",
  ]) {
    const { status, body } = await get(`/v1/changes?ciId=${ciId}&${query}`);
    if (query.startsWith("from=9999")) expect({ query, status }).toEqual({ query, status: 200 });
    else
      expect({ query, status, detail: body.detail }).toEqual({
        query,
        status: 400,
        detail: expect.stringMatching(/must be a date-time in the years 0001 to 9999/),
      });
  }
  for (const path of [
    "/v1/kpis?at=0000-01-01T00:00:00Z",
    "/v1/audit?from=0000-01-01T00:00:00Z",
    "/v1/audit?to=0000-06-01T00:00:00Z",
    "/v1/calendar?from=0000-01-01T00:00:00Z&to=0000-02-01T00:00:00Z",
  ]) {
    const { status, body } = await get(path);
    expect({ path, status, detail: body.detail }).toEqual({
      path,
      status: 400,
      detail: expect.stringMatching(/in the years 0001 to 9999/),
    });
  }
});

test("two booked changes with the same key that collide are a pair on the calendar", async () => {
  const ciId = uniqueId("ci-shared");
  const key = "CHG-2041-0007"; // the same key from two change services behind one topic
  const first = await insertChange({ key, ciIds: [ciId], start: "2041-03-01T10:00:00Z", end: "2041-03-01T12:00:00Z" });
  const second = await insertChange({ key, ciIds: [ciId], start: "2041-03-01T11:00:00Z", end: "2041-03-01T13:00:00Z" });
  const { status, body } = await get("/v1/calendar?from=2041-03-01T00:00:00Z&to=2041-03-02T00:00:00Z");
  expect(status).toBe(200);
  expect(body.collisions).toEqual([
    {
      changes: [first, second].sort().map((changeRequestId) => expect.objectContaining({ changeRequestId, key })),
      ciIds: [ciId],
    },
  ]);
});

test("CMDB pages hold every item once, in one page's order, whatever case folding does to the names", async () => {
  const owner = uniqueId("owner");
  // Names PostgreSQL's lower() folds unlike JavaScript's toLowerCase: İ (dotted capital I), a final Σ.
  // And the longest names the CMDB takes, whose page tokens are the longest: 200 characters of
  // three UTF-8 bytes each, and of characters JSON escapes.
  const names = ["İa", "ib", "ic", "ΟΔΟΣ", "οδοσ", "Zeta", "配".repeat(200), '"\\'.repeat(100)];
  for (const [i, name] of names.entries())
    await pool.query(
      `INSERT INTO cmdb_ci_view (ci_id, name, type, owner, status, attributes, version, created_at, updated_at)
       VALUES ($1, $2, 'SERVICE', $3, 'LIVE', '{}', 1, now(), now())`,
      [`${owner}-${i}`, name, owner],
    );
  const ids = (body: { items: { ciId: string }[] }) => body.items.map((item) => item.ciId);
  const all = ids((await get(`/v1/cmdb/items?owner=${owner}&pageSize=500`)).body);
  expect(all).toHaveLength(names.length);

  const walked: string[] = [];
  let token: string | null = null;
  do {
    const { status, body } = await get(
      `/v1/cmdb/items?owner=${owner}&pageSize=1${token === null ? "" : `&pageToken=${token}`}`,
    );
    expect(status).toBe(200);
    walked.push(...ids(body));
    token = body.nextPageToken;
  } while (token !== null && walked.length <= names.length);
  expect(walked).toEqual(all);

  // The search folds its text as the names are folded, final Σ included.
  const found = ids((await get(`/v1/cmdb/items?owner=${owner}&q=${encodeURIComponent("ΟΔΟΣ")}`)).body);
  expect(found.sort()).toEqual([`${owner}-3`, `${owner}-4`]);
});

test("a changes page token pages on with its filters however written, at any page size, and nowhere else", async () => {
  const ci = uniqueId("ci-pages");
  for (let i = 0; i < 3; i++) {
    const id = await insertChange({
      key: uniqueId("CHG"),
      ciIds: [ci],
      start: "2042-01-01T10:00:00Z",
      end: "2042-01-01T11:00:00Z",
    });
    // Whole milliseconds, as projected events have: now() has microseconds, which tokens do not keep.
    await pool.query("UPDATE change_view SET raised_at = $2 WHERE change_request_id = $1", [
      id,
      new Date(Date.UTC(2026, 0, i + 1)),
    ]);
  }
  const ids = (body: { changes: { changeRequestId: string }[] }) => body.changes.map((c) => c.changeRequestId);
  const all = ids((await get(`/v1/changes?ciId=${ci}`)).body);
  const first = await get(`/v1/changes?ciId=${ci}&state=scheduled,implementing&pageSize=1`);
  const token: string = first.body.nextPageToken;
  // The same filters, their lists in another order and case, and a larger page.
  const rest = await get(`/v1/changes?state=IMPLEMENTING,Scheduled&ciId=${ci}&pageSize=5&pageToken=${token}`);
  expect([rest.status, rest.body.nextPageToken]).toEqual([200, null]);
  expect([...ids(first.body), ...ids(rest.body)]).toEqual(all);
  expect(all).toHaveLength(3);

  const refused = {
    status: 400,
    body: { ...badRequest, detail: "pageToken does not belong to this list and filters" },
  };
  for (const path of [
    `/v1/changes?ciId=${ci}&pageToken=${token}`,
    `/v1/changes?ciId=${ci}&state=SCHEDULED&pageToken=${token}`,
    `/v1/changes?ciId=${ci}&state=SCHEDULED,IMPLEMENTING&q=a&pageToken=${token}`,
    `/v1/changes?ciId=${uniqueId("ci")}&state=SCHEDULED,IMPLEMENTING&pageToken=${token}`,
  ]) {
    const { status, body } = await get(path);
    expect([path, { status, body }]).toEqual([path, refused]);
  }
  // An unfiltered list's token, on another list of the same kind of keys (a time and a uuid) unfiltered.
  const unfiltered: string = (await get("/v1/changes?pageSize=1")).body.nextPageToken;
  const { status, body } = await get(`/v1/releases?pageToken=${unfiltered}`);
  expect({ status, body }).toEqual(refused);
});

test("a release or deployment id in upper case finds what it finds in lower case, on every route that takes it", async () => {
  const releaseId = randomUUID();
  const deploymentId = randomUUID();
  await pool.query(
    `INSERT INTO deployment_view (deployment_id, release_id, environment, state, state_sequence, strategy, artifacts,
       first_event_at, updated_at) VALUES ($1, $2, 'production', 'IN_PROGRESS', 0, 'ALL_AT_ONCE', '[]', now(), now())`,
    [deploymentId, releaseId],
  );
  await pool.query(
    `INSERT INTO deployment_plan_view (deployment_id, release_id, environment, status, plan, version, updated_at,
       first_event_at) VALUES ($1, $2, 'production', 'IN_PROGRESS', $3, 0, now(), now())`,
    [deploymentId, releaseId, JSON.stringify({ ...emptyPlan({ deploymentId, releaseId }), status: "IN_PROGRESS" })],
  );
  await pool.query(
    `INSERT INTO audit_event (event_id, source, event_type, subject, stream_version, occurred_at, actor, correlation_id,
       causation_id, request_id, release_id, change_request_id, deployment_id, environments, views)
     VALUES ($1, 'release', 'rdm.release.v1.ReleaseRegistered', $2, 1, now(), 'ann', '', '', '', $2, '', '', '{}', '{}')`,
    [randomUUID(), releaseId],
  );
  const found = async (id: string) => [
    (await get(`/v1/releases/${id}/deployments`)).body.deployments.length,
    (await get(`/v1/deployments?releaseId=${id}`)).body.deployments.length,
    (await get(`/v1/audit?release=${id}`)).body.entries.length,
  ];
  expect(await found(releaseId)).toEqual([1, 1, 1]);
  expect(await found(releaseId.toUpperCase())).toEqual([1, 1, 1]);
  expect((await get(`/v1/deployments/${deploymentId.toUpperCase()}`)).body.deploymentId).toBe(deploymentId);
});

describe("the release event stream", () => {
  const releaseId = randomUUID();
  let seqs: number[];

  async function addHistory(version: number) {
    const client = await pool.connect();
    try {
      await client.query("BEGIN");
      const { rows } = await client.query<{ seq: string }>(
        `INSERT INTO release_history (release_id, version, event_type, occurred_at, actor, reason, phase)
         VALUES ($1, $2, 'rdm.release.v1.ReleaseLogEntryRecorded', now(), 'carl', '', 'PLANNING') RETURNING seq`,
        [releaseId, version],
      );
      await client.query("SELECT pg_notify($1, '')", [RELEASE_HISTORY_CHANNEL]);
      await client.query("COMMIT");
      return Number(rows[0]?.seq);
    } finally {
      client.release();
    }
  }

  /**
   * Opens the stream; `next()` gives the next block (an event, or a comment). node:http rather than
   * fetch, whose sockets outlive an abort (and would hold up the server's close for seconds).
   */
  async function open(query: string, headers: Record<string, string>) {
    const url = `${gatewayUrl}/v1/releases/events?releaseId=${releaseId}&${query}`;
    const { request, response } = await new Promise<{ request: ClientRequest; response: IncomingMessage }>(
      (resolve, reject) => {
        const request = httpGet(url, { headers: { authorization: bearer, ...headers } }, (response) =>
          resolve({ request, response }),
        );
        request.on("error", reject);
      },
    );
    expect(response.headers["content-type"]).toContain("text/event-stream");
    const chunks = response.setEncoding("utf8")[Symbol.asyncIterator]();
    let buffer = "";
    const next = async (): Promise<string> => {
      while (!buffer.includes("\n\n")) {
        const { value, done } = await chunks.next();
        if (done) throw new Error("the stream ended");
        buffer += value;
      }
      const block = buffer.slice(0, buffer.indexOf("\n\n"));
      buffer = buffer.slice(block.length + 2);
      return block;
    };
    /** The id of the next event, past comments (": connected", ": keep-alive"). */
    const nextEventId = async () => {
      for (let block = await next(); ; block = await next()) {
        const id = block.split("\n").find((line) => line.startsWith("id: "));
        if (id) return Number(id.slice("id: ".length));
      }
    };
    return { next, nextEventId, close: () => request.destroy() };
  }

  beforeAll(async () => {
    seqs = [await addHistory(1), await addHistory(2)];
  });

  test("a Last-Event-ID resumes after that event, whatever `after` the reconnecting URL still says", async () => {
    const stream = await open("after=0", { "last-event-id": String(seqs[0]) });
    try {
      expect(await stream.nextEventId()).toBe(seqs[1]);
    } finally {
      stream.close();
    }
  });

  test("an empty Last-Event-ID is none: the stream starts now, it does not replay the history", async () => {
    const stream = await open("", { "last-event-id": "" });
    try {
      // Connected: the stream has taken its starting point; what is added now is the first event.
      expect(await stream.next()).toBe(": connected");
      const added = await addHistory(3);
      expect(await stream.nextEventId()).toBe(added);
    } finally {
      stream.close();
    }
  });
});
