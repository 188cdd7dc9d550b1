/**
 * Turns what the runtime saw of an attempt into the report the server applies (SPEC §6, §7): which way it
 * ended, its error, its result and result quality. Pure.
 */
import type { AttemptReport } from '../core/model.js';
import { extractResult } from '../core/result-rules.js';
import type { AttemptOutcome, ColdStartTimings } from '../runtime/port.js';

export interface AttemptFacts {
  task_id: string; attempt: number; lease_token: string; timeout_s: number; handBack: boolean;
  outcome: AttemptOutcome; output: string; output_tail: string; started_at: string | null;
  cold_start: ColdStartTimings | null;
}

export function attemptReport(f: AttemptFacts): AttemptReport {
  const o = f.outcome;
  const extracted = extractResult({
    resultFileText: o.resultFileText, resultFileBytes: o.resultFileBytes, stdoutTail: o.stdoutTail, exitCode: o.exitCode,
  });
  let outcome: AttemptReport['outcome'];
  let error: AttemptReport['error'] = o.error ?? extracted.error ?? null;
  if (f.handBack) outcome = 'handed_back';
  else if (o.cancelled) {
    outcome = 'cancelled';
    error = { code: 'cancelled', message: 'The task was cancelled; its process tree was stopped.' };
  } else if (o.timedOut) {
    outcome = 'timed_out';
    error = { code: 'timeout', message: `The attempt passed timeout_s (${f.timeout_s} s); its process tree was stopped.` };
  } else if (o.error || extracted.error?.code === 'result_too_large') outcome = 'failed';
  else if (extracted.success) outcome = 'succeeded';
  else outcome = 'failed';
  if (outcome === 'succeeded') error = null;
  // Killed by a signal it did not ask for (a crash, the OOM killer): no exit code, so say which signal.
  else if (outcome === 'failed' && error === null && o.exitCode === null && o.signal) {
    error = { code: 'killed_by_signal', message: `runner_command was killed by ${o.signal}; see the task's output for what it did last.` };
  }
  return {
    task_id: f.task_id, attempt: f.attempt, lease_token: f.lease_token, exit_code: o.exitCode, outcome, error,
    output: withoutNul(f.output), output_tail: withoutNul(f.output_tail), result: extracted.result,
    result_quality: extracted.result_quality,
    result_warnings: extracted.result_warnings, duration_ms: Math.round(o.durationMs), started_at: f.started_at,
    finished_at: new Date().toISOString(), cold_start: f.cold_start,
  };
}

/**
 * NUL characters in output become U+FFFD: PostgreSQL's text refuses them, and one report it refuses would
 * be retried for ever, holding back every other report of the worker. (A task may print anything; results
 * and progress are stored as JSON text, where JSON.stringify already escapes a NUL.)
 */
export function withoutNul(text: string): string {
  return text.includes('\0') ? text.replaceAll('\0', '\uFFFD') : text;
}
