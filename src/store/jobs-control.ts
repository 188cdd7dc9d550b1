/**
 * Changes to jobs that do not come from an attempt ending: cancel (SPEC §6: queued tasks never start;
 * running ones are told through the heartbeat answer and end as cancelled), queue timeouts, and the live
 * feedback and lease renewals that heartbeats carry.
 */
import { sql } from 'kysely';
import { addSeconds, nowIso } from '../core/clock.js';
import { allowedFrom, TASK_LEASED_STATES, TASK_TRANSITIONS } from '../core/states.js';
import { finishJobIfDone } from './jobs-finish.js';
import { stateList } from './sqlite-inline.js';
import type { TxContext } from './tx.js';
import { uniqueRuns, valuesTable } from './values-table.js';

/** Tasks holding a lease, whose attempt is live. */
const LIVE: readonly string[] = TASK_LEASED_STATES;

/**
 * `notStarted` (cancel-queued: SPEC §3 "jobs that have not started"): only a job still queued when this
 * statement runs, and no running task is asked to stop. On PostgreSQL a worker's lease can start the job
 * after the caller listed it as queued and before this runs (reviewed: a long cancel-queued asked 13
 * tasks that had started meanwhile to stop, and their completed results were recorded as cancelled).
 * Each statement sees what committed before it, so the job is checked in the statement that cancels.
 */
export async function cancelJobInTx(t: TxContext, jobId: string, reason: string, opts: { notStarted?: boolean } = {}): Promise<{ cancelled_tasks: number; cancelling_tasks: number }> {
  const now = nowIso();
  let queued = t.tx.updateTable('tasks')
    .set({ status: 'cancelled', status_reason: reason, finished_at: now })
    .where('job_id', '=', jobId).where('status', '=', 'queued')
    .where('status', 'in', allowedFrom(TASK_TRANSITIONS, 'cancelled'));
  if (opts.notStarted) {
    queued = queued.where(({ exists, selectFrom }) => exists(selectFrom('jobs').select('jobs.id').where('jobs.id', '=', jobId).where('jobs.status', '=', 'queued')));
  }
  const cancelled = await queued.returning(['id', 'idx', 'account_id', 'project_id']).execute();
  const running = opts.notStarted ? { numUpdatedRows: 0n } : await t.tx.updateTable('tasks').set({ cancel_requested: 1, status_reason: `${reason}; stopping` })
    .where('job_id', '=', jobId).where('status', 'in', LIVE).executeTakeFirst();
  for (const task of cancelled) {
    t.emit({ type: 'task.status', accountId: task.account_id, projectId: task.project_id, jobId, data: { job_id: jobId, task_id: task.id, index: task.idx, status: 'cancelled', status_reason: reason } });
  }
  if (cancelled.length > 0) await finishJobIfDone(t, jobId, cancelled.length);
  return { cancelled_tasks: cancelled.length, cancelling_tasks: Number(running.numUpdatedRows) };
}

/** Queued tasks past their job's queue_timeout_s fail, with the reason. */
export async function expireQueuedInTx(t: TxContext, now: string): Promise<number> {
  const late = await t.tx.updateTable('tasks')
    .set({ status: 'failed', finished_at: now, status_reason: 'not started within queue_timeout_s',
      error: JSON.stringify({ code: 'queue_timeout', message: 'No worker started this task within the job\'s queue_timeout_s.' }) })
    .where('status', '=', 'queued').where('queue_deadline', '<', now)
    .returning(['id', 'job_id', 'idx', 'account_id', 'project_id']).execute();
  const perJob = new Map<string, number>();
  for (const task of late) {
    perJob.set(task.job_id, (perJob.get(task.job_id) ?? 0) + 1);
    t.emit({ type: 'task.status', accountId: task.account_id, projectId: task.project_id, jobId: task.job_id, data: { job_id: task.job_id, task_id: task.id, index: task.idx, status: 'failed', status_reason: 'not started within queue_timeout_s' } });
  }
  for (const [jobId, n] of perJob) await finishJobIfDone(t, jobId, n);
  return late.length;
}

export interface HeldLease { task_id: string; lease_token: string }

/** Renews every lease the worker holds; answers which to cancel and which it no longer holds. */
export async function heartbeatInTx(t: TxContext, workerId: string, held: HeldLease[]): Promise<{ cancel: string[]; lost: string[] }> {
  const now = nowIso();
  await t.tx.updateTable('workers').set({ last_seen_at: now }).where('id', '=', workerId).execute();
  await t.tx.updateTable('tasks').set({ lease_expires_at: addSeconds(now, t.leaseSeconds) })
    .where('worker_id', '=', workerId).where('status', 'in', LIVE).execute();
  if (held.length === 0) return { cancel: [], lost: [] };
  const rows = await t.tx.selectFrom('tasks').select(['id', 'lease_token', 'status', 'cancel_requested'])
    .where('id', 'in', held.map((h) => h.task_id)).execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  const cancel: string[] = [];
  const lost: string[] = [];
  for (const lease of held) {
    const row = byId.get(lease.task_id);
    if (!row || row.lease_token !== lease.lease_token || !LIVE.includes(row.status)) lost.push(lease.task_id);
    else if (row.cancel_requested === 1) cancel.push(lease.task_id);
  }
  return { cancel, lost };
}

export interface LiveUpdate { task_id: string; lease_token: string; output_tail?: string; progress?: { progress: number; message?: string } }

/** Output tails and progress while tasks run: `live_feedback` and the task.output / task.progress events. */
export async function liveUpdateInTx(t: TxContext, updates: LiveUpdate[]): Promise<void> {
  const changed = updates.filter((u) => u.output_tail !== undefined || u.progress !== undefined);
  for (const run of uniqueRuns(changed, (u) => u.task_id)) {
    // null leaves a column as it is: an update may carry the tail, the progress, or both.
    const values = valuesTable('v', ['text', 'text', 'text', 'text'], run.map((u) => [
      u.task_id, u.lease_token, u.output_tail ?? null, u.progress === undefined ? null : JSON.stringify(u.progress),
    ]));
    const { rows } = await sql<{ id: string; job_id: string; idx: number; account_id: string; project_id: string }>`
      update tasks set output_tail = coalesce(v.column3, tasks.output_tail), latest_progress = coalesce(v.column4, tasks.latest_progress)
      from ${values}
      where tasks.id = v.column1 and tasks.lease_token = v.column2 and tasks.status in (${stateList(LIVE)})
      returning id, job_id, idx, account_id, project_id`.execute(t.tx);
    const byId = new Map(rows.map((row) => [row.id, row]));
    for (const u of run) {
      const row = byId.get(u.task_id);
      if (!row) continue;
      const base = { accountId: row.account_id, projectId: row.project_id, jobId: row.job_id };
      if (u.progress !== undefined) t.emit({ ...base, type: 'task.progress', data: { job_id: row.job_id, task_id: u.task_id, index: row.idx, ...u.progress } });
      if (u.output_tail !== undefined) t.emit({ ...base, type: 'task.output', data: { job_id: row.job_id, task_id: u.task_id, index: row.idx, output_tail: u.output_tail } });
    }
  }
}
