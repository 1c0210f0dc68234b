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
  maxWorkers: 2,
  // Each test file loads its modules anew (ESM in vm contexts), so a worker's heap grows through
  // the run. Past 1 GB after a file, the worker is replaced: workers that ended the run at about
  // 1.2 GB took over Jest's 500 ms to end after their last exit handler (a process frees its heap
  // as it ends) and were killed ("A worker process has failed to exit gracefully").
  workerIdleMemoryLimit: "1GB",
};
