// Secrets never reach a log, an event or an error message: this scrubs the shapes they take
// (Authorization headers, user:password@ in URLs, token/password query or JSON fields).

const PATTERNS: Array<[RegExp, string]> = [
  [/(authorization\s*[:=]\s*)(basic|bearer)\s+[^\s",]+/gi, '$1$2 [REDACTED]'],
  [/\b(basic|bearer)\s+[A-Za-z0-9._~+/=-]{16,}/gi, '$1 [REDACTED]'],
  [/(\/\/[^/\s:@]+:)[^@\s/]+@/g, '$1[REDACTED]@'],
  [/("?(?:password|secret|token|access_token|identitytoken|refresh_token|auth)"?\s*[:=]\s*"?)[^"\s,&}]+/gi, '$1[REDACTED]'],
  // Pre-signed storage URLs (a registry's blob redirect) carry their capability in the query.
  [/([?&](?:sig|signature|x-amz-signature|x-amz-credential|x-goog-signature|x-goog-credential|googleaccessid)=)[^&\s"]+/gi, '$1[REDACTED]'],
];

export function redact(text: string): string {
  let out = text;
  for (const [pattern, replacement] of PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

/**
 * `value` with every string in it redacted, at any depth. Objects and arrays are copied only when
 * something in them changed, so an event without secrets passes through as it is.
 */
export function redactValues<T>(value: T): T {
  if (typeof value === 'string') return redact(value) as T;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    value.forEach((item: unknown, i) => {
      const next = redactValues(item);
      if (next !== item) (copy ??= value.slice())[i] = next;
    });
    return (copy ?? value) as T;
  }
  if (value !== null && typeof value === 'object') {
    let copy: Record<string, unknown> | undefined;
    for (const [key, item] of Object.entries(value)) {
      const next = redactValues(item);
      if (next !== item) (copy ??= { ...(value as Record<string, unknown>) })[key] = next;
    }
    return (copy ?? value) as T;
  }
  return value;
}
