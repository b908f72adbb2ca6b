// Runs a docker credential helper (`docker-credential-<name> get|store|erase`, the payload on
// stdin) and turns its failures into one redacted line: not installed, failed with its own first
// words, or the protocol's "credentials not found", which is an answer, not an error.
import { throwIfAborted } from '../abort.js';
import { TskoError } from '../errors.js';
import { redact } from '../redact.js';

export type HelperVerb = 'get' | 'store' | 'erase';

/** stdout of the helper; '' when it says it has no credentials (for get and erase). */
export async function execCredentialHelper(
  helper: string,
  verb: HelperVerb,
  input: string,
  env: Record<string, string | undefined>,
  signal?: AbortSignal,
): Promise<string> {
  if (!/^[\w.-]+$/.test(helper)) throw new TskoError('REGISTRY_AUTH', `bad credential helper name "${helper}" in docker config`);
  // execa loads only when a helper is configured, not with every registry client.
  const { execa } = await import('execa');
  const result = await execa(`docker-credential-${helper}`, [verb], {
    input,
    env,
    extendEnv: false,
    timeout: 30_000,
    reject: false,
    ...(signal ? { cancelSignal: signal } : {}),
  });
  if (!result.failed) return String(result.stdout);
  if ((result as { code?: string }).code === 'ENOENT') {
    throw new TskoError('REGISTRY_AUTH', `credential helper docker-credential-${helper} is not installed`, {
      hint: 'install it or remove it from credHelpers/credsStore in your docker config.json',
    });
  }
  throwIfAborted(signal);
  const said = `${String(result.stdout ?? '')}\n${String(result.stderr ?? '')}`.trim();
  if (verb !== 'store' && /credentials not found/i.test(said)) return '';
  // Helpers explain themselves on stdout (docker-credential-gcloud: "You do not currently have an
  // active account selected…"); the first line is worth showing, redacted and bounded.
  const reason = said.split('\n')[0]?.trim().slice(0, 200) ?? '';
  const what = verb === 'get' ? '' : ` ${verb}`;
  throw new TskoError('REGISTRY_AUTH', `credential helper docker-credential-${helper}${what} failed (exit ${result.exitCode ?? 'none'})${reason !== '' ? `: ${redact(reason)}` : ''}`);
}
