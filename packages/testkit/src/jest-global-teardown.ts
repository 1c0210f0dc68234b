/** Jest globalTeardown: stops what jest-global-setup started. */
export default async function globalTeardown(): Promise<void> {
  const servers = globalThis.__rdmTestServers;
  globalThis.__rdmTestServers = undefined;
  await servers?.stop();
}
