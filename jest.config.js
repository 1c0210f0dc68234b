// One jest run over the whole tree. TypeScript is compiled by SWC as native ESM
// (node --experimental-vm-modules); workspace packages are imported from their built dist.
const swc = ["@swc/jest", { jsc: { parser: { syntax: "typescript" }, target: "es2022" }, module: { type: "es6" } }];
export default {
  testEnvironment: "node",
  extensionsToTreatAsEsm: [".ts"],
  transform: { "^.+\\.ts$": swc },
  moduleNameMapper: { "^(\\.{1,2}/.*)\\.js$": "$1" },
  testMatch: ["<rootDir>/{packages,services}/*/test/**/*.test.ts", "<rootDir>/test/**/*.test.ts"],
  testPathIgnorePatterns: ["/node_modules/", "/dist/"],
  testTimeout: 60_000,
  // One PostgreSQL and one Kafka-protocol broker per run (see packages/testkit/README.md).
  globalSetup: "<rootDir>/packages/testkit/dist/jest-global-setup.js",
  globalTeardown: "<rootDir>/packages/testkit/dist/jest-global-teardown.js",
  // Three on two cores: most files wait more than they compute (a new consumer group's first
  // join takes the mock broker's fixed 3 s, services start as processes), so the CPU idled 41%
  // with three. The whole suite took 739 s with two, 503 s with three, 409 s with four (which
  // left the files 9% slower each: less room on a busier machine).
  maxWorkers: 3,
  // A worker is gone up to about 0.55 s after its last exit handler here (it frees a heap that
  // holds every test file's modules), past Jest's default 0.5 s, after which Jest kills it and
  // warns "A worker process has failed to exit gracefully" though nothing leaked.
  workerGracefulExitTimeout: 2_000,
};
