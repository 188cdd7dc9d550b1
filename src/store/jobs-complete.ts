/**
 * The end of attempts: worker reports, expired leases ("worker lost"), queue timeouts and cancels all end
 * here. Each ending is a guarded UPDATE on the task row (lease token + live status), so a stale attempt
 * changes nothing and two enders can never both end one task. A terminal task decrements its job's
 * `tasks_open`; the ending that brings it to zero finishes the job (or, for map_reduce, starts the reduce).
 */
import { decideAttempt } from '../core/attempt-decision.js';
import { nowIso } from '../core/clock.js';
import { allowedFrom, TASK_TRANSITIONS } from '../core/states.js';
import type { AttemptReport } from '../core/model.js';
import { finishJobIfDone } from './jobs-finish.js';
import type { TxContext } from './tx.js';

export type EndResult = { task_id: string; ok: true; status: string } | { task_id: string; ok: false; code: 'lease_mismatch' };

/** Tasks an attempt can end from: those a worker holds (any other status means the lease is stale). */
const LIVE = allowedFrom(TASK_TRANSITIONS, 'completed');

export async function endAttemptsInTx(t: TxContext, reports: AttemptReport[]): Promise<EndResult[]> {
  const results: EndResult[] = [];
  const jobs = new Map<string, { max_attempts: number; backoff_s: number }>();
  // Terminal endings per job, applied once per job after the batch: one job-row update, not one per task.
  const ended = new Map<string, number>();
  const now = Date.now();
  // One read for the whole batch (a round trip per task costs on PostgreSQL); the guarded UPDATE below
  // still decides, so a row that changed since this read changes nothing.
  const rows = reports.length === 0 ? [] : await t.tx.selectFrom('tasks')
    .select(['id', 'job_id', 'project_id', 'account_id', 'idx', 'status', 'attempt', 'lease_token', 'cancel_requested', 'node'])
    .where('id', 'in', reports.map((r) => r.task_id)).execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const report of reports) {
    const task = byId.get(report.task_id);
    if (!task || !(LIVE as string[]).includes(task.status) || task.lease_token !== report.lease_token || task.attempt !== report.attempt) {
      results.push({ task_id: report.task_id, ok: false, code: 'lease_mismatch' });
      continue;
    }
    let job = jobs.get(task.job_id);
    if (!job) {
      job = await t.tx.selectFrom('jobs').select(['max_attempts', 'backoff_s']).where('id', '=', task.job_id).executeTakeFirstOrThrow();
      jobs.set(task.job_id, job);
    }
    const d = decideAttempt({ attempt: task.attempt, cancel_requested: task.cancel_requested === 1 }, job, report.outcome, now, report.error?.code ?? null);
    const finished = d.terminal ? report.finished_at : null;
    // A lost worker reported nothing: keep the output tail its heartbeats left.
    const fromWorker = report.outcome === 'worker_lost' ? {} : {
      output: report.output, output_tail: report.output_tail,
      result: report.result === undefined ? null : JSON.stringify(report.result), result_quality: report.result_quality,
      result_warnings: JSON.stringify(report.result_warnings), duration_ms: report.duration_ms,
      cold_start: report.cold_start ? JSON.stringify(report.cold_start) : null,
    };
    const updated = await t.tx.updateTable('tasks').set({
      status: d.status, status_reason: d.reason, attempt: d.attempt, available_at: d.availableAt ?? nowIso(now),
      worker_id: null, lease_token: null, lease_expires_at: null, exit_code: report.exit_code,
      error: report.error ? JSON.stringify(report.error) : null, finished_at: finished, ...fromWorker,
    }).where('id', '=', task.id).where('lease_token', '=', report.lease_token).where('status', 'in', LIVE)
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) === 0) {
      results.push({ task_id: report.task_id, ok: false, code: 'lease_mismatch' });
      continue;
    }
    if (report.outcome === 'handed_back' && d.status === 'queued') {
      await t.tx.deleteFrom('attempts').where('task_id', '=', task.id).where('attempt', '=', report.attempt).execute();
    } else {
      await t.tx.updateTable('attempts').set({
        status: report.outcome, exit_code: report.exit_code, error: report.error ? JSON.stringify(report.error) : null,
        started_at: report.started_at, finished_at: report.finished_at,
      }).where('task_id', '=', task.id).where('attempt', '=', report.attempt).execute();
    }
    t.emit({
      type: 'task.status', accountId: task.account_id, projectId: task.project_id, jobId: task.job_id,
      data: {
        job_id: task.job_id, task_id: task.id, index: task.idx, status: d.status, status_reason: d.reason,
        attempt: report.attempt, exit_code: report.exit_code, error: report.error,
      },
    });
    if (d.terminal) ended.set(task.job_id, (ended.get(task.job_id) ?? 0) + 1);
    else t.addWork();
    results.push({ task_id: report.task_id, ok: true, status: d.status });
  }
  for (const [jobId, n] of ended) await finishJobIfDone(t, jobId, n);
  return results;
}

/** Leases past their expiry: the worker is gone; its attempts end as `worker_lost` (and count). */
export async function expireLeasesInTx(t: TxContext, now: string): Promise<number> {
  const expired = await t.tx.selectFrom('tasks').select(['id', 'attempt', 'lease_token', 'started_at'])
    .where('status', 'in', LIVE).where('lease_expires_at', '<', now).limit(1000).execute();
  const reports: AttemptReport[] = expired.map((task) => ({
    task_id: task.id, attempt: task.attempt, lease_token: task.lease_token ?? '', exit_code: null,
    outcome: 'worker_lost', error: { code: 'worker_lost', message: `The worker stopped renewing its lease (${t.leaseSeconds} s); the attempt was abandoned.` },
    output: '', output_tail: '', result: null, result_quality: null, result_warnings: [], duration_ms: 0,
    started_at: task.started_at, finished_at: now, cold_start: null,
  }));
  const ended = await endAttemptsInTx(t, reports);
  return ended.filter((r) => r.ok).length;
}
