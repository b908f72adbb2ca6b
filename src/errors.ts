// Typed errors: every failure tsko reports is one line (message) plus an optional hint, and a
// stable code that tests and the JSON reporter can match on. Stack traces only with --verbose.

export type ErrorCode =
  | 'CONFIG_INVALID'
  | 'CONFIG_LOAD'
  | 'USAGE'
  | 'KO_DOCKER_REPO'
  | 'GO_MISSING'
  | 'GO_LIST'
  | 'GO_NOT_MAIN'
  | 'GO_BUILD'
  | 'KODATA'
  | 'PLATFORM'
  | 'BASE_IMAGE'
  | 'REFERENCE'
  | 'REGISTRY_UNREACHABLE'
  | 'REGISTRY_AUTH'
  | 'REGISTRY_HTTP'
  | 'REGISTRY_DIGEST'
  | 'REGISTRY_SERVE'
  | 'OUTPUT'
  | 'DEPLOY'
  | 'KUBE'
  | 'RESOLVE'
  | 'CLOUDRUN'
  | 'ABORTED'
  | 'INTERNAL';

export class TskoError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  /** Extra multi-line detail shown under the one line (e.g. compiler output). */
  readonly detail: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; detail?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TskoError';
    this.code = code;
    this.hint = options.hint;
    this.detail = options.detail;
  }
}

export function isTskoError(err: unknown): err is TskoError {
  return err instanceof TskoError;
}

export function isAbortError(err: unknown): boolean {
  return (
    (err instanceof Error && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR')) ||
    (err instanceof TskoError && err.code === 'ABORTED')
  );
}

/** Normalise anything thrown into a TskoError, keeping the original as the cause. */
export function toTskoError(err: unknown): TskoError {
  if (err instanceof TskoError) return err;
  if (isAbortError(err)) return new TskoError('ABORTED', 'aborted', { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new TskoError('INTERNAL', message, { cause: err });
}
