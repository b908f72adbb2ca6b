// The embedded registry's entry points as `tsko registry` calls them, loaded when a subcommand
// runs rather than when the command line is parsed: the server (node:http, its store, router and
// auth) is not needed to print help or to run any other command.
import type * as Server from '../registry/server/index.js';

export { DEFAULT_REGISTRY_ADDR, defaultRegistryRoot } from '../registry/server/address.js';
export type { RegistryAuth } from '../registry/server/index.js';

const server = (): Promise<typeof Server> => import('../registry/server/index.js');

export const gcRegistry: typeof Server.gcRegistry = async (...args) => (await server()).gcRegistry(...args);
export const loadHtpasswd: typeof Server.loadHtpasswd = async (...args) => (await server()).loadHtpasswd(...args);
export const loadTokenFile: typeof Server.loadTokenFile = async (...args) => (await server()).loadTokenFile(...args);
export const startRegistryServer: typeof Server.startRegistryServer = async (...args) => (await server()).startRegistryServer(...args);
