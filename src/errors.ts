// Typed errors: every failure tsko reports is one line (message) plus an optional hint, and a
// stable code that tests and the JSON reporter can match on. Stack traces only with --verbose.
import type { Diagnostic, ErrorInfo } from './events.js';

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
  /** A failed go build's diagnostics, parsed where the build ran. */
  readonly diagnostics: readonly Diagnostic[] | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string | undefined; detail?: string | undefined; diagnostics?: readonly Diagnostic[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'TskoError';
    this.code = code;
    this.hint = options.hint;
    this.detail = options.detail;
    this.diagnostics = options.diagnostics;
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

/** What an error event and a failed iteration carry: the error without its stack or cause. */
export function toErrorInfo(err: unknown): ErrorInfo {
  const e = toTskoError(err);
  return {
    code: e.code,
    message: e.message,
    ...(e.hint ? { hint: e.hint } : {}),
    ...(e.detail ? { detail: e.detail } : {}),
    ...(e.diagnostics && e.diagnostics.length > 0 ? { diagnostics: [...e.diagnostics] } : {}),
  };
}

