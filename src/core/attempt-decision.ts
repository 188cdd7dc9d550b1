/**
 * What happens to a task when one of its attempts ends (SPEC §6 retries, timeouts, cancel; §8 SIGTERM).
 * Pure: takes the task's state and the report, returns the task's next state.
 *
 *   succeeded                         → completed
 *   cancelled, or a cancel was asked  → cancelled (never retried)
 *   failed / timed_out / worker_lost  → queued again after backoff while attempts remain, else failed
 *   handed_back (worker stopping)     → queued at once, and the attempt does not count
 */
import type { AttemptReport } from './model.js';
import { nextAttempt } from './retry.js';

export interface AttemptDecision {
  status: 'completed' | 'cancelled' | 'failed' | 'queued';
  terminal: boolean;
  /** The attempt number the task keeps (handed back: one less, so the next lease reuses it). */
  attempt: number;
  availableAt: string | null;
  reason: string;
}

const WHY: Record<AttemptReport['outcome'], string> = {
  succeeded: 'completed',
  failed: 'the runner exited with an error',
  timed_out: 'the attempt passed timeout_s',
  cancelled: 'cancelled',
  worker_lost: 'worker lost',
  handed_back: 'handed back by its worker (stopping, or its held task waited too long for a slot)',
};

export function decideAttempt(
  task: { attempt: number; cancel_requested: boolean },
  job: { max_attempts: number; backoff_s: number },
  outcome: AttemptReport['outcome'],
  now: number,
  errorCode: string | null = null,
): AttemptDecision {
  if (outcome === 'handed_back' && !task.cancel_requested) {
    return { status: 'queued', terminal: false, attempt: task.attempt - 1, availableAt: new Date(now).toISOString(), reason: WHY.handed_back };
  }
  if (outcome === 'cancelled' || task.cancel_requested) {
    return { status: 'cancelled', terminal: true, attempt: task.attempt, availableAt: null, reason: 'cancelled' };
  }
  if (outcome === 'succeeded') {
    return { status: 'completed', terminal: true, attempt: task.attempt, availableAt: null, reason: 'completed' };
  }
  const next = nextAttempt({
    attempt: task.attempt, maxAttempts: job.max_attempts, backoffS: job.backoff_s,
    // The same code would write the same oversized result again: never retried.
    reason: errorCode === 'result_too_large' ? 'result_too_large'
      : outcome === 'timed_out' ? 'timeout' : outcome === 'worker_lost' ? 'worker_lost' : 'exit',
  }, now);
  if (next.retry) {
    return {
      status: 'queued', terminal: false, attempt: task.attempt, availableAt: next.availableAt,
      reason: `attempt ${task.attempt} of ${job.max_attempts} failed (${WHY[outcome]}); retrying after backoff`,
    };
  }
  return {
    status: 'failed', terminal: true, attempt: task.attempt, availableAt: null,
    reason: `failed after ${task.attempt} attempt(s): ${WHY[outcome]}`,
  };
}
