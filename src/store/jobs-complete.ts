/**
 * The end of attempts: worker reports, expired leases ("worker lost"), queue timeouts and cancels all end
 * here. Each ending is a guarded UPDATE on the task row (lease token + live status), so a stale attempt
 * changes nothing and two enders can never both end one task. A terminal task decrements its job's
 * `tasks_open`; the ending that brings it to zero finishes the job (or, for map_reduce, starts the reduce).
 */
import { sql } from 'kysely';
import { decideAttempt, type AttemptDecision } from '../core/attempt-decision.js';
import { nowIso } from '../core/clock.js';
import { allowedFrom, TASK_TRANSITIONS } from '../core/states.js';
import type { AttemptReport } from '../core/model.js';
import { finishJobIfDone } from './jobs-finish.js';
import { stateList } from './sqlite-inline.js';
import type { TxContext } from './tx.js';
import { uniqueRuns, valuesTable, type SqlType } from './values-table.js';

export type EndResult = { task_id: string; ok: true; status: string } | { task_id: string; ok: false; code: 'lease_mismatch' };

/** Tasks an attempt can end from: those a worker holds (any other status means the lease is stale). */
const LIVE = allowedFrom(TASK_TRANSITIONS, 'completed');

export async function endAttemptsInTx(t: TxContext, reports: AttemptReport[]): Promise<EndResult[]> {
  const results = new Map<AttemptReport, EndResult>();
  for (const run of uniqueRuns(reports, (r) => r.task_id)) await endRun(t, run, results);
  return reports.map((r) => results.get(r)!);
}

/** Ends a batch with no task twice: one read, one guarded UPDATE for the tasks, one for their attempts. */
async function endRun(t: TxContext, reports: AttemptReport[], results: Map<AttemptReport, EndResult>): Promise<void> {
  const now = Date.now();
  // One read for the whole batch, with each task's job's retry settings; the guarded UPDATE below still
  // decides, so a row that changed since this read changes nothing.
  const rows = await t.tx.selectFrom('tasks').innerJoin('jobs', 'jobs.id', 'tasks.job_id')
    .select(['tasks.id', 'tasks.job_id', 'tasks.project_id', 'tasks.account_id', 'tasks.idx', 'tasks.status', 'tasks.attempt',
      'tasks.lease_token', 'tasks.cancel_requested', 'tasks.node', 'jobs.max_attempts', 'jobs.backoff_s'])
    .where('tasks.id', 'in', reports.map((r) => r.task_id)).execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const live = reports.filter((report) => {
    const task = byId.get(report.task_id);
    const ok = task && (LIVE as string[]).includes(task.status) && task.lease_token === report.lease_token && task.attempt === report.attempt;
    if (!ok) results.set(report, { task_id: report.task_id, ok: false, code: 'lease_mismatch' });
    return ok;
  });
  if (live.length === 0) return;
  const decided = live.map((report) => {
    const task = byId.get(report.task_id)!;
    const d = decideAttempt({ attempt: task.attempt, cancel_requested: task.cancel_requested === 1 }, task, report.outcome, now, report.error?.code ?? null);
    return { report, task, d };
  });
  // A lost worker reported nothing: its tasks keep the output tail its heartbeats left.
  const updated = new Set<string>();
  for (const lost of [false, true]) {
    const group = decided.filter((x) => (x.report.outcome === 'worker_lost') === lost);
    if (group.length > 0) for (const id of await updateEndedTasks(t, group, lost, now)) updated.add(id);
  }
  const ended = decided.filter((x) => updated.has(x.task.id));
  if (ended.length > 0) t.hasXid = true;
  for (const x of decided) if (!updated.has(x.task.id)) results.set(x.report, { task_id: x.report.task_id, ok: false, code: 'lease_mismatch' });
  await recordAttempts(t, ended);
  // Terminal endings per job, applied once per job after the batch: one job-row update, not one per task.
  const perJob = new Map<string, number>();
  for (const { report, task, d } of ended) {
    t.emit({
      type: 'task.status', accountId: task.account_id, projectId: task.project_id, jobId: task.job_id,
      data: {
        job_id: task.job_id, task_id: task.id, index: task.idx, status: d.status, status_reason: d.reason,
        attempt: report.attempt, exit_code: report.exit_code, error: report.error,
      },
    });
    if (d.terminal) perJob.set(task.job_id, (perJob.get(task.job_id) ?? 0) + 1);
    else t.addWork();
    results.set(report, { task_id: report.task_id, ok: true, status: d.status });
  }
  for (const [jobId, n] of perJob) await finishJobIfDone(t, jobId, n);
}

type Decided = { report: AttemptReport; task: { id: string }; d: AttemptDecision };

/** The guarded UPDATE of a batch of ended tasks; answers the ids it changed (the others' leases were stale). */
async function updateEndedTasks(t: TxContext, group: Decided[], lost: boolean, now: number): Promise<string[]> {
  const common = (x: Decided) => [
    x.task.id, x.report.lease_token, x.d.status, x.d.reason, x.d.attempt, x.d.availableAt ?? nowIso(now),
    x.report.exit_code, x.report.error ? JSON.stringify(x.report.error) : null, x.d.terminal ? x.report.finished_at : null,
  ];
  const types: SqlType[] = ['text', 'text', 'text', 'text', 'integer', 'text', 'integer', 'text', 'text'];
  const fromWorker = (x: Decided) => [
    x.report.output, x.report.output_tail, x.report.result === undefined ? null : JSON.stringify(x.report.result),
    x.report.result_quality, JSON.stringify(x.report.result_warnings), x.report.duration_ms,
    x.report.cold_start ? JSON.stringify(x.report.cold_start) : null,
  ];
  const values = lost
    ? valuesTable('v', types, group.map(common))
    : valuesTable('v', [...types, 'text', 'text', 'text', 'real', 'text', 'integer', 'text'], group.map((x) => [...common(x), ...fromWorker(x)]));
  const workerColumns = lost ? sql`` : sql`, output = v.column10, output_tail = v.column11, result = v.column12,
    result_quality = v.column13, result_warnings = v.column14, duration_ms = v.column15, cold_start = v.column16`;
  const { rows } = await sql<{ id: string }>`
    update tasks set status = v.column3, status_reason = v.column4, attempt = v.column5, available_at = v.column6,
      worker_id = null, lease_token = null, lease_expires_at = null, exit_code = v.column7, error = v.column8,
      finished_at = v.column9${workerColumns}
    from ${values}
    where tasks.id = v.column1 and tasks.lease_token = v.column2 and tasks.status in (${stateList(LIVE)})
    returning id`.execute(t.tx);
  return rows.map((r) => r.id);
}

/** The attempts' history rows: a handed-back attempt that did not count is deleted, the others get their end. */
async function recordAttempts(t: TxContext, ended: Decided[]): Promise<void> {
  const kept: Decided[] = [];
  for (const x of ended) {
    if (x.report.outcome === 'handed_back' && x.d.status === 'queued') {
      await t.tx.deleteFrom('attempts').where('task_id', '=', x.task.id).where('attempt', '=', x.report.attempt).execute();
    } else {
      kept.push(x);
    }
  }
  if (kept.length === 0) return;
  const values = valuesTable('v', ['text', 'integer', 'text', 'integer', 'text', 'text', 'text'], kept.map(({ task, report }) => [
    task.id, report.attempt, report.outcome, report.exit_code, report.error ? JSON.stringify(report.error) : null,
    report.started_at, report.finished_at,
  ]));
  await sql`
    update attempts set status = v.column3, exit_code = v.column4, error = v.column5, started_at = v.column6, finished_at = v.column7
    from ${values}
    where attempts.task_id = v.column1 and attempts.attempt = v.column2`.execute(t.tx);
}

/** Leases past their expiry: the worker is gone; its attempts end as `worker_lost` (and count). */
export async function expireLeasesInTx(t: TxContext, now: string): Promise<number> {
  // On SQLite the statuses are written out (sqlite-inline.ts): only then does it read the partial index
  // tasks_leases (WHERE status IN the same literals); with bound values it scanned every task ever run.
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
