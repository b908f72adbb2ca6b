// The three patch kinds a Kubernetes API server accepts, for the fake: strategic merge (lists
// merged by their merge key, `$setElementOrder` directives, null deletes), JSON merge patch
// (RFC 7386) and JSON patch (RFC 6902, with `test`). Small on purpose: what Deployments need.

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Lists merged by a key in a strategic merge patch (core/v1 and apps/v1 field tags). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  imagePullSecrets: 'name',
  ports: 'containerPort',
};

export function strategicMerge(target: Json, patch: Json): Json {
  if (!isObject(patch) || !isObject(target)) return structuredClone(patch);
  const out: JsonObject = structuredClone(target);
  const orders: Record<string, Json[]> = {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$setElementOrder/')) {
      orders[key.slice('$setElementOrder/'.length)] = value as Json[];
      continue;
    }
    if (key.startsWith('$')) continue;
    if (value === null) {
      delete out[key];
      continue;
    }
    const mergeKey = MERGE_KEYS[key];
    if (mergeKey && Array.isArray(value) && Array.isArray(out[key])) {
      const merged = [...(out[key] as Json[])];
      for (const item of value) {
        if (!isObject(item)) continue;
        const at = merged.findIndex((m) => isObject(m) && m[mergeKey] === item[mergeKey]);
        if (item.$patch === 'delete') {
          if (at >= 0) merged.splice(at, 1);
        } else if (at >= 0) merged[at] = strategicMerge(merged[at] as Json, item);
        else merged.push(structuredClone(item));
      }
      out[key] = merged;
    } else if (isObject(value) && isObject(out[key])) {
      out[key] = strategicMerge(out[key] as Json, value);
    } else {
      out[key] = structuredClone(value);
    }
  }
  for (const [key, order] of Object.entries(orders)) {
    const mergeKey = MERGE_KEYS[key] ?? 'name';
    const list = out[key];
    if (!Array.isArray(list)) continue;
    const position = (item: Json) => order.findIndex((o) => isObject(o) && isObject(item) && o[mergeKey] === item[mergeKey]);
    out[key] = [...list].sort((a, b) => position(a) - position(b));
  }
  return out;
}

export function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return structuredClone(patch);
  const out: JsonObject = isObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key] ?? null, value);
  }
  return out;
}

export class PatchTestFailed extends Error {}

export function jsonPatch(target: Json, ops: Array<{ op: string; path: string; value?: Json; from?: string }>): Json {
  let doc = structuredClone(target);
  for (const op of ops) {
    const parts = op.path.split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop() as string;
    let parent: Json = doc;
    for (const part of parts) {
      parent = Array.isArray(parent) ? (parent[Number(part)] as Json) : isObject(parent) ? (parent[part] as Json) : null;
      if (parent === undefined || parent === null) throw new PatchTestFailed(`path ${op.path} does not exist`);
    }
    const get = (): Json | undefined => (Array.isArray(parent) ? parent[Number(last)] : isObject(parent) ? parent[last] : undefined);
    switch (op.op) {
      case 'test':
        if (JSON.stringify(get()) !== JSON.stringify(op.value)) throw new PatchTestFailed(`test at ${op.path} failed`);
        break;
      case 'remove':
        if (Array.isArray(parent)) parent.splice(Number(last), 1);
        else if (isObject(parent)) delete parent[last];
        break;
      case 'add':
      case 'replace':
        if (Array.isArray(parent)) {
          if (last === '-') parent.push(op.value as Json);
          else if (op.op === 'add') parent.splice(Number(last), 0, op.value as Json);
          else parent[Number(last)] = op.value as Json;
        } else if (isObject(parent)) {
          if (op.op === 'replace' && !(last in parent)) throw new PatchTestFailed(`path ${op.path} does not exist`);
          parent[last] = op.value as Json;
        } else if (parts.length === 0 && last === '') {
          doc = op.value as Json;
        }
        break;
      default:
        throw new PatchTestFailed(`unsupported op ${op.op}`);
    }
  }
  return doc;
}
