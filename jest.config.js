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
};
