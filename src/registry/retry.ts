// Bounded retries with exponential backoff and jitter, for whole registry operations. An upload is
// retried as a unit through its body factory (undici cannot replay a consumed stream), so this
// wraps operations, not HTTP requests.
import { sleep, throwIfAborted } from '../abort.js';

export interface RetryPolicy {
  /** Attempts in all, including the first. */
  tries: number;
  /** No retry is scheduled that would start later than this many ms after the first attempt. */
  maxElapsedMs: number;
  /** Delay before the first retry; each later one is `factor` times longer (±20 % jitter). */
  baseDelayMs: number;
  factor: number;
  /** No backoff grows past this (a Retry-After may still ask for longer). */
  maxDelayMs?: number;
}

/**
 * Sized so a push survives a badly flaky link (test/flaky-network: 20 % of requests reset, 5xx or
 * 429, where fewer tries sometimes run out) while a registry that is really down fails within
 * about 10 s: a fault costs 200 ms first, backoff doubles up to 2 s, and an operation gives up
 * after 8 tries (~9 s of waiting).
 */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { tries: 8, maxElapsedMs: 30_000, baseDelayMs: 200, factor: 2, maxDelayMs: 2_000 };

export interface RetryVerdict {
  /** Short reason shown in the retry event, e.g. `503`, `ECONNRESET`. */
  cause: string;
  /** The server's Retry-After, when it gave one. */
  retryAfterMs?: number;
}

export interface RetryNotice {
  attempt: number;
  cause: string;
  delayMs: number;
}

export interface RetryContext {
  policy: RetryPolicy;
  /** A verdict when the error is worth another try, undefined when it is final. */
  classify: (err: unknown) => RetryVerdict | undefined;
  onRetry?: (notice: RetryNotice) => void;
  signal?: AbortSignal;
  /** For tests: the jitter source, in [0, 1). */
  random?: () => number;
  now?: () => number;
}

export function backoffDelay(policy: RetryPolicy, retryNumber: number, random: () => number = Math.random): number {
  const base = Math.min(policy.baseDelayMs * policy.factor ** (retryNumber - 1), policy.maxDelayMs ?? Number.POSITIVE_INFINITY);
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Runs `fn` until it succeeds, fails finally, runs out of tries or time, or the signal aborts. */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, ctx: RetryContext): Promise<T> {
  const now = ctx.now ?? Date.now;
  const start = now();
  for (let attempt = 1; ; attempt++) {
    throwIfAborted(ctx.signal);
    try {
      return await fn(attempt);
    } catch (err) {
      throwIfAborted(ctx.signal);
      const verdict = ctx.classify(err);
      if (verdict === undefined || attempt >= ctx.policy.tries) throw err;
      let delayMs = backoffDelay(ctx.policy, attempt, ctx.random);
      if (verdict.retryAfterMs !== undefined) delayMs = Math.max(delayMs, verdict.retryAfterMs);
      if (now() - start + delayMs > ctx.policy.maxElapsedMs) throw err;
      ctx.onRetry?.({ attempt, cause: verdict.cause, delayMs });
      await sleep(delayMs, ctx.signal);
    }
  }
}

/** Retry-After as ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
