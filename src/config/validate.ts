// Checks a loaded config object against UserConfig, naming the exact key path of the first
// problem (`builds[1].main must be a string`), and rejects unknown keys anywhere, which are
// usually typos: `dev.prot is not a known key: did you mean port?`.
import { TskoError } from '../errors.js';
import type { UserConfig } from './define.js';
import { closestName } from './suggest.js';

/** A check, and for objects and lists what is inside (so the schema can list its key paths). */
interface Check {
  (value: unknown, path: string): string | undefined;
  fields?: Record<string, Check>;
  item?: Check;
}

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

function objectOf(fields: Record<string, Check>, required: string[] = []): Check {
  const check: Check = (value, path) => {
    if (!isPlainObject(value)) return `${path} must be an object`;
    for (const key of required) if (value[key] === undefined) return `${path}.${key} is required`;
    for (const [key, item] of Object.entries(value)) {
      if (item === undefined) continue;
      const keyPath = path ? `${path}.${key}` : key;
      const fieldCheck = fields[key];
      if (!fieldCheck) {
        const known = Object.keys(fields);
        const suggestion = closestName(key, known);
        return suggestion ? `${keyPath} is not a known key: did you mean ${suggestion}?` : `${keyPath} is not a known key (known: ${known.join(', ')})`;
      }
      const err = fieldCheck(item, keyPath);
      if (err) return err;
    }
    return undefined;
  };
  check.fields = fields;
  return check;
}

function listOf(itemCheck: Check): Check {
  const check: Check = (value, path) => {
    if (!Array.isArray(value)) return `${path} must be a list`;
    for (const [i, item] of value.entries()) {
      const err = itemCheck(item, `${path}[${i}]`);
      if (err) return err;
    }
    return undefined;
  };
  check.item = itemCheck;
  return check;
}

const buildCheck = objectOf(
  { id: isString, dir: isString, main: isString, env: isEnvList, flags: isStringOrList, ldflags: isStringOrList },
  ['main'],
);

const serviceObjectCheck = objectOf({ path: isString, port: isPort }, ['path']);
const serviceCheck: Check = Object.assign((value: unknown, path: string) => (typeof value === 'string' ? undefined : serviceObjectCheck(value, path)), {
  fields: serviceObjectCheck.fields,
});

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

/**
 * Every key path the config accepts (`dev.port`, `builds[].main`, `dev.services[].path`), in
 * schema order: what README's Configuration section must document.
 */
export function configKeyPaths(): string[] {
  const paths: string[] = [];
  const walk = (check: Check, prefix: string) => {
    if (check.item) return walk(check.item, `${prefix}[]`);
    for (const [key, field] of Object.entries(check.fields ?? {})) {
      const path = prefix ? `${prefix}.${key}` : key;
      paths.push(path);
      walk(field, path);
    }
  };
  walk(configCheck, '');
  return paths;
}

export function validateConfig(value: unknown, file: string): UserConfig {
  const err = configCheck(value, '');
  if (err) throw new TskoError('CONFIG_INVALID', `${file}: ${err}`);
  return value as UserConfig;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
