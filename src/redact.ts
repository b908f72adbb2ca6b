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
