// The distribution-spec error model: an HTTP status plus `{"errors":[{code,message,detail}]}`.
// Handlers throw RegistryError; the HTTP layer turns it into the response.

export type RegistryErrorCode =
  | 'BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'DIGEST_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'NAME_INVALID'
  | 'NAME_UNKNOWN'
  | 'SIZE_INVALID'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS'
  // Not in the spec's table, but what distribution itself sends for server-side failures.
  | 'UNKNOWN';

export class RegistryError extends Error {
  readonly status: number;
  readonly code: RegistryErrorCode;
  readonly detail: unknown;
  /** Extra response headers (e.g. Content-Range on a 416). */
  readonly headers: Record<string, string>;

  constructor(status: number, code: RegistryErrorCode, message: string, options: { detail?: unknown; headers?: Record<string, string> } = {}) {
    super(message);
    this.name = 'RegistryError';
    this.status = status;
    this.code = code;
    this.detail = options.detail;
    this.headers = options.headers ?? {};
  }
}

export function errorBody(code: RegistryErrorCode, message: string, detail?: unknown): string {
  const entry: { code: string; message: string; detail?: unknown } = { code, message };
  if (detail !== undefined) entry.detail = detail;
  return JSON.stringify({ errors: [entry] });
}

/** Node's errno for "no space left" and "quota exceeded". */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * The disk (or quota) is full: where, and how much room the request needed, so the one line the
 * server logs says what to free. The client only hears that storage is full.
 */
export class StorageFullError extends Error {
  readonly code = 'ENOSPC';
  /** The file (or directory) being written. */
  readonly path: string;
  /** Bytes the request had to write; a lower bound when `neededIsMinimum` (a body of unknown length). */
  readonly neededBytes: number | undefined;
  readonly neededIsMinimum: boolean;
  /** Bytes free to an unprivileged writer when it failed, if statfs could tell. */
  readonly freeBytes: number | undefined;

  constructor(path: string, needed: { bytes?: number; isMinimum?: boolean }, freeBytes: number | undefined, options?: { cause?: unknown }) {
    const need = needed.bytes === undefined ? '' : ` needs ${needed.isMinimum ? 'at least ' : ''}${formatBytes(needed.bytes)}`;
    const free = freeBytes === undefined ? '' : `${need ? ',' : ''} ${formatBytes(freeBytes)} free`;
    super(`registry storage is full: writing ${path}${need}${free}`, options);
    this.name = 'StorageFullError';
    this.path = path;
    this.neededBytes = needed.bytes;
    this.neededIsMinimum = needed.isMinimum ?? false;
    this.freeBytes = freeBytes;
  }
}

/** `1.5 MiB (1572864 bytes)`: readable, and exact for whoever frees space by the byte. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = -1;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]} (${n} bytes)`;
}
