// Checks a loaded config object against UserConfig, naming the exact key path of the first
// problem (`builds[1].main must be a string`), and rejects unknown keys, which are usually typos.
import { TskoError } from '../errors.js';
import type { UserConfig } from './define.js';

type Check = (value: unknown, path: string) => string | undefined;

const isString: Check = (v, p) => (typeof v === 'string' ? undefined : `${p} must be a string`);
const isStringList: Check = (v, p) => {
  if (!Array.isArray(v)) return `${p} must be a list of strings`;
  const bad = v.findIndex((item) => typeof item !== 'string');
  return bad === -1 ? undefined : `${p}[${bad}] must be a string`;
};
const isStringOrList: Check = (v, p) => (typeof v === 'string' ? undefined : isStringList(v, p));
const isEnvList: Check = (v, p) => {
  const err = isStringList(v, p);
  if (err) return err;
  const bad = (v as string[]).findIndex((item) => !/^[A-Za-z_][A-Za-z0-9_]*=/.test(item));
  return bad === -1 ? undefined : `${p}[${bad}] must look like KEY=VALUE`;
};
const isStringMap: Check = (v, p) => {
  if (!isPlainObject(v)) return `${p} must be a map of strings`;
  for (const [key, item] of Object.entries(v)) if (typeof item !== 'string') return `${p}.${key} must be a string`;
  return undefined;
};
const isPositiveNumber: Check = (v, p) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? undefined : `${p} must be a positive number`);
const isPort: Check = (v, p) => (Number.isInteger(v) && (v as number) > 0 && (v as number) < 65536 ? undefined : `${p} must be a port number`);

function objectOf(fields: Record<string, Check>, required: string[] = [], open = false): Check {
  return (value, path) => {
    if (!isPlainObject(value)) return `${path} must be an object`;
    for (const key of required) if (value[key] === undefined) return `${path}.${key} is required`;
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue;
      const check = fields[key];
      if (!check) {
        if (open) continue;
        return `${path ? `${path}.` : ''}${key} is not a known key (known: ${Object.keys(fields).join(', ')})`;
      }
      const err = check(item, path ? `${path}.${key}` : key);
      if (err) return err;
    }
    return undefined;
  };
}

function listOf(check: Check): Check {
  return (value, path) => {
    if (!Array.isArray(value)) return `${path} must be a list`;
    for (const [i, item] of value.entries()) {
      const err = check(item, `${path}[${i}]`);
      if (err) return err;
    }
    return undefined;
  };
}

const buildCheck = objectOf(
  { id: isString, dir: isString, main: isString, env: isEnvList, flags: isStringOrList, ldflags: isStringOrList },
  ['main'],
);

const serviceCheck: Check = (value, path) =>
  typeof value === 'string' ? undefined : objectOf({ path: isString, port: isPort }, ['path'])(value, path);

const devCheck = objectOf(
  {
    services: listOf(serviceCheck),
    target: (v, p) => (v === 'local' || v === 'kubernetes' || v === 'cloudrun' ? undefined : `${p} must be local, kubernetes or cloudrun`),
    port: isPort,
    keepImages: (v, p) => (Number.isInteger(v) && (v as number) > 0 ? undefined : `${p} must be a positive whole number`),
    kubernetes: objectOf({
      context: isString,
      namespace: isString,
      deployment: isString,
      container: isString,
      manifests: isStringList,
      timeout: isPositiveNumber,
    }),
    cloudrun: objectOf({ project: isString, region: isString, service: isString, timeout: isPositiveNumber, allowUnauthenticated: (v, p) => (typeof v === 'boolean' ? undefined : `${p} must be true or false`) }),
  },
  [],
  true, // later dev-loop sections validate themselves
);

const configCheck = objectOf({
  defaultBaseImage: isString,
  baseImageOverrides: isStringMap,
  builds: listOf(buildCheck),
  defaultPlatforms: isStringList,
  defaultEnv: isEnvList,
  defaultFlags: isStringList,
  defaultLdflags: isStringList,
  dev: devCheck,
  registry: objectOf({ caFile: isString, insecure: isStringList }),
});

export function validateConfig(value: unknown, file: string): UserConfig {
  const err = configCheck(value, '');
  if (err) throw new TskoError('CONFIG_INVALID', `${file}: ${err}`);
  return value as UserConfig;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
