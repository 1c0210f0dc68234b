import { sameSubject, subjectKey } from "../src/index.js";

test.each([
  ["olivia", "Olivia"],
  ["olivia", "OLIVIA"],
  ["olivia", " olivia\t"],
  ["OLIVIA", "ＯＬＩＶＩＡ"],
  ["straße", "STRASSE"],
  ["İlker", "i̇lker"],
])("%j and %j are one subject", (a, b) => {
  expect(sameSubject(a, b)).toBe(true);
});

test.each([
  ["olivia", "olivia2"],
  ["olivia", "olívia"],
  ["ann", "anne"],
])("%j and %j are two subjects", (a, b) => {
  expect(sameSubject(a, b)).toBe(false);
});

test("the key is stable: folding it again changes nothing", () => {
  for (const subject of ["Olivia", "ＯＬＩＶＩＡ", " Ann ", "İlker"]) {
    expect(subjectKey(subjectKey(subject))).toBe(subjectKey(subject));
  }
});
