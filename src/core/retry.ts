/**
 * Whether a failed attempt is tried again, and when (SPEC §6 "Retries, timeouts, cancel"). Pure.
 *
 * Invariants:
 * - `attempt` is the 1-based number of the attempt that just ended; it counts whatever ended it, a lost
 *   worker included (SPEC: "a lost worker's attempt counts"), so a task that kills its worker cannot loop.
 * - Retried while attempt < maxAttempts, after backoff_s × 2^(attempt−1) seconds: 2 s, 4 s, 8 s … with
 *   the default 2. The delay is capped at one hour (the most backoff_s may be), so 20 attempts cannot
 *   park a task for days.
 * - Never retried: `cancelled` (SPEC: cancelled tasks are never retried), and `result_too_large`: the same
 *   code writes the same result again, so a retry only burns the attempts and delays the failure.
 * - Every other reason (non-zero exit, timeout, lost worker) waits the same backoff: a worker lost to an
 *   out-of-memory kill is as likely to be the task's doing as the machine's.
 */
import { nowIso } from './clock.js';

export const RETRY_REASONS = ['exit', 'timeout', 'worker_lost', 'cancelled', 'result_too_large'] as const;
export type RetryReason = (typeof RETRY_REASONS)[number];

/** The longest wait between two attempts. */
export const MAX_BACKOFF_S = 3600;

const NEVER_RETRIED: ReadonlySet<RetryReason> = new Set(['cancelled', 'result_too_large']);

export interface AttemptEnd {
  attempt: number;
  maxAttempts: number;
  backoffS: number;
  reason: RetryReason;
}

export type RetryDecision =
  | { retry: true; availableAt: string; delayMs: number }
  | { retry: false; why: 'never_retried' | 'attempts_exhausted' };

/** Seconds to wait after attempt number `attempt` (1-based) failed. */
export function backoffSeconds(attempt: number, backoffS: number): number {
  if (backoffS <= 0) return 0;
  // 2^(attempt−1) overflows to Infinity long after the cap; Math.min handles that.
  return Math.min(backoffS * 2 ** Math.max(0, attempt - 1), Math.max(MAX_BACKOFF_S, backoffS));
}

/** `now` is epoch milliseconds; `availableAt` is the RFC 3339 time the task may be leased again. */
export function nextAttempt(end: AttemptEnd, now: number): RetryDecision {
  if (NEVER_RETRIED.has(end.reason)) return { retry: false, why: 'never_retried' };
  if (end.attempt >= end.maxAttempts) return { retry: false, why: 'attempts_exhausted' };
  const delayMs = Math.round(backoffSeconds(end.attempt, end.backoffS) * 1000);
  return { retry: true, availableAt: nowIso(now + delayMs), delayMs };
}
