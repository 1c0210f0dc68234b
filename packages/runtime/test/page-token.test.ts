import fc from "fast-check";
import { decodePageToken, encodePageToken, isIsoTimestamp, pageTokenScope } from "../src/page-token.js";

const any = () => true;

test("a scope is the same however the request is written, and another for another list or other filters", () => {
  const scope = pageTokenScope("release.ListReleases", { owner: "ann", states: [2, 1], pageSize: 5 });
  // Key order, list order, repeats, page size, page token and absent fields make no difference.
  expect(
    pageTokenScope("release.ListReleases", { pageToken: "x", states: [1, 2, 1], owner: "ann", text: undefined }),
  ).toBe(scope);
  expect(pageTokenScope("release.ListReleases", { $typeName: "a.B", owner: "ann", states: [1, 2] })).toBe(scope);
  expect(
    new Set([
      scope,
      pageTokenScope("change.ListChanges", { owner: "ann", states: [1, 2] }),
      pageTokenScope("release.ListReleases", { owner: "bob", states: [1, 2] }),
      pageTokenScope("release.ListReleases", { owner: "ann", states: [1] }),
      pageTokenScope("release.ListReleases", { owner: "ann", states: [1, 2], text: "" }),
      pageTokenScope("release.ListReleases", { owner: "ann", states: [1, 2], overdue: false }),
      pageTokenScope("release.ListReleases", { owner: "ann", states: [1, 2], window: { start: { seconds: 1n } } }),
      pageTokenScope("release.ListReleases", { owner: "ann", states: [1, 2], window: { start: { seconds: 2n } } }),
    ]).size,
  ).toBe(8);
});

test("a token decodes under its own scope only; a damaged one, or one of before scopes, is not valid", () => {
  const scope = pageTokenScope("change.ListChanges", { ciId: "ci-1" });
  const token = encodePageToken(scope, "2026-01-01T00:00:00.000Z", "00000000-0000-4000-8000-000000000000");
  expect(decodePageToken(token, scope, any, any)).toEqual([
    "2026-01-01T00:00:00.000Z",
    "00000000-0000-4000-8000-000000000000",
  ]);
  expect(decodePageToken(token, pageTokenScope("change.ListChanges", { ciId: "ci-2" }), any, any)).toBe(
    "does not belong to this list and filters",
  );
  expect(decodePageToken(token, scope, any, (id) => id === "other")).toBe("is not valid");
  const unscoped = Buffer.from(JSON.stringify(["2026-01-01T00:00:00.000Z", "x"])).toString("base64url");
  for (const refused of [unscoped, "garbage", "", token.slice(0, -3)]) {
    expect([refused, decodePageToken(refused, scope, any, any)]).toEqual([refused, "is not valid"]);
  }
  // Parts the query could not take: U+0000, an instant outside the years 0001-9999.
  for (const [key, id] of [
    ["2026-01-01T00:00:00.000Z", "a\u0000"],
    ["0000-06-01T00:00:00.000Z", "a"],
    ["-271821-04-20T00:00:00.000Z", "a"],
    ["+010000-01-01T00:00:00.000Z", "a"],
  ] as const) {
    expect(decodePageToken(encodePageToken(scope, key, id), scope, isIsoTimestamp, any)).toBe("is not valid");
  }
  // A change's token (a timestamp and a uuid) stays within ListChanges' 100 characters.
  expect(token.length).toBeLessThanOrEqual(100);
});

/** Text PostgreSQL can hold (no U+0000), as every sort key and id is. */
const storable = fc.string().filter((text) => !text.includes("\u0000"));

test("any token decodes to what was encoded under the scope that made it, and under no other", () => {
  const filters = fc.dictionary(fc.string(), fc.oneof(fc.string(), fc.integer(), fc.array(fc.string())));
  fc.assert(
    fc.property(fc.string(), filters, filters, storable, storable, (list, a, b, key, id) => {
      const [scopeA, scopeB] = [pageTokenScope(list, a), pageTokenScope(list, b)];
      const token = encodePageToken(scopeA, key, id);
      expect(decodePageToken(token, scopeA, any, any)).toEqual([key, id]);
      if (scopeB !== scopeA) {
        expect(decodePageToken(token, scopeB, any, any)).toBe("does not belong to this list and filters");
      }
    }),
  );
});
