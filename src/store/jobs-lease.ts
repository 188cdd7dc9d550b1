/**
 * Leasing work to workers (SPEC §8). A lease is a token on the task row plus an expiry; every later report
 * names the token, so a stale attempt can never complete a task. One transaction leases a whole batch:
 * PostgreSQL locks the candidate rows with FOR UPDATE SKIP LOCKED so concurrent leasers never wait on
 * each other; SQLite has one writer. The guarded UPDATE (status = 'queued') is the compare-and-set.
 *
 * Queue order: priority (high first), then when the task became available, then id (FIFO).
 *
 * Prefetch: a worker running short tasks may ask for `prefetch` tasks beyond its free slots, held until a
 * slot frees (worker/agent.ts). Those come only from jobs already running (or starting in this lease) and
 * only as a continuation of queue order: the first queued task of a job that has not started stops them.
 * So a job nobody has started stays `queued` (cancel-queued still applies to it), and a higher-priority
 * job is never passed by prefetched work; it waits at most for the few tasks already held.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { addSeconds, nowIso } from '../core/clock.js';
import type { LeasedTask } from '../core/model.js';
import { allowedFrom, JOB_TRANSITIONS, TASK_TRANSITIONS } from '../core/states.js';
import type { TxContext } from './tx.js';
import { uniqueRuns, valuesTable } from './values-table.js';

/** A job starts running only from queued (its first lease); a start report applies only to a leased task. */
const TO_RUNNING_JOB = allowedFrom(JOB_TRANSITIONS, 'running');
const STARTED_FROM = allowedFrom(TASK_TRANSITIONS, 'running').filter((s) => s !== 'queued');

export interface LeaseRequest {
  workerId: string; node: string; profile: string;
  /** Free slots: up to this many tasks in queue order. */
  slots: number;
  /** Up to this many more, held for the slots as they free (see above). */
  prefetch?: number;
}

export async function leaseInTx(t: TxContext, req: LeaseRequest): Promise<LeasedTask[]> {
  const extra = Math.max(0, req.prefetch ?? 0);
  if (req.slots <= 0 && extra <= 0) return [];
  const now = nowIso();
  let q = t.tx.selectFrom('tasks').innerJoin('jobs', 'jobs.id', 'tasks.job_id')
    .select(['tasks.id', 'tasks.job_id', 'jobs.status as job_status'])
    .where('tasks.status', '=', 'queued').where('tasks.available_at', '<=', now).where('jobs.profile', '=', req.profile)
    .orderBy('tasks.priority', 'desc').orderBy('tasks.available_at').orderBy('tasks.id').limit(Math.max(0, req.slots) + extra);
  if (t.dialect === 'postgres') q = q.modifyEnd(sql`for update of tasks skip locked`);
  const candidates = await q.execute();
  const picked = candidates.slice(0, Math.max(0, req.slots));
  const running = new Set([...picked.map((c) => c.job_id), ...candidates.filter((c) => c.job_status === 'running').map((c) => c.job_id)]);
  const held: string[] = [];
  for (const c of candidates.slice(picked.length)) {
    if (!running.has(c.job_id)) break;
    held.push(c.id);
  }
  if (picked.length + held.length === 0) return [];

  const token = randomBytes(16).toString('hex');
  const reason = `preparing runtime on ${req.node}`;
  const waiting = `leased by ${req.node}, waiting for a free slot`;
  const leased = await t.tx.updateTable('tasks')
    .set((eb) => ({
      status: 'preparing', attempt: eb('attempt', '+', 1), worker_id: req.workerId, lease_token: token,
      lease_expires_at: addSeconds(now, t.leaseSeconds), node: req.node,
      status_reason: held.length === 0 ? reason : eb.case().when('id', 'in', held).then(waiting).else(reason).end(),
    }))
    .where('id', 'in', [...picked.map((c) => c.id), ...held]).where('status', 'in', allowedFrom(TASK_TRANSITIONS, 'preparing'))
    .returning(['id', 'job_id', 'project_id', 'account_id', 'idx', 'attempt', 'payload', 'runner_command', 'kind'])
    .execute();
  if (leased.length === 0) return [];
  // In queue order: the worker starts them in the order it gets them.
  const order = new Map(candidates.map((c, i) => [c.id, i]));
  leased.sort((a, b) => order.get(a.id)! - order.get(b.id)!);

  await t.tx.insertInto('attempts').values(leased.map((r) => ({
    task_id: r.id, attempt: r.attempt, job_id: r.job_id, worker_id: req.workerId, node: req.node, status: 'preparing',
    exit_code: null, error: null, started_at: null, finished_at: null,
  }))).execute();

  const jobIds = [...new Set(leased.map((r) => r.job_id))];
  const jobs = await t.tx.selectFrom('jobs').innerJoin('projects', 'projects.id', 'jobs.project_id')
    .select(['jobs.id', 'jobs.status', 'jobs.revision_id', 'jobs.content_hash', 'jobs.env', 'jobs.timeout_s',
      'jobs.checkpoint', 'jobs.runner_command', 'jobs.tasks_total', 'projects.name as project'])
    .where('jobs.id', 'in', jobIds).execute();
  // Only jobs that were not running yet (read just above, in this transaction): a fan-out's later leases
  // skip the statement. The status guard in the WHERE still decides.
  const starting = jobs.filter((j) => (TO_RUNNING_JOB as readonly string[]).includes(j.status)).map((j) => j.id);
  const started = starting.length === 0 ? [] : await t.tx.updateTable('jobs').set({ status: 'running', started_at: now, status_reason: reason })
    .where('id', 'in', starting).where('status', 'in', TO_RUNNING_JOB).returning(['id', 'account_id', 'project_id']).execute();
  for (const job of started) {
    t.emit({ type: 'job.status', accountId: job.account_id, projectId: job.project_id, jobId: job.id, data: { job_id: job.id, status: 'running', status_reason: reason } });
  }
  const byId = new Map(jobs.map((j) => [j.id, j]));
  return leased.map((r) => {
    const job = byId.get(r.job_id)!;
    t.emit({
      type: 'task.status', accountId: r.account_id, projectId: r.project_id, jobId: r.job_id,
      data: { job_id: r.job_id, task_id: r.id, index: r.idx, status: 'preparing', attempt: r.attempt, node: req.node },
    });
    return {
      task_id: r.id, job_id: r.job_id, project_id: r.project_id, account_id: r.account_id, project: job.project,
      revision_id: job.revision_id, content_hash: job.content_hash, index: r.idx, task_count: job.tasks_total,
      attempt: r.attempt, lease_token: token, payload: JSON.parse(r.payload), kind: r.kind,
      runner_command: r.runner_command ? JSON.parse(r.runner_command) : job.runner_command ? JSON.parse(job.runner_command) : null,
      env: JSON.parse(job.env), timeout_s: job.timeout_s, checkpoint: job.checkpoint === 1,
    };
  });
}

export interface StartReport { task_id: string; attempt: number; lease_token: string; started_at: string; node: string }

/** The user process started: preparing → running, one statement per batch. Stale reports (another lease) change nothing. */
export async function markStartedInTx(t: TxContext, reports: StartReport[]): Promise<void> {
  for (const run of uniqueRuns(reports, (r) => r.task_id)) {
    const values = valuesTable('v', ['text', 'text', 'text', 'text'], run.map((r) => [r.task_id, r.lease_token, r.started_at, `running on ${r.node}`]));
    // The attempt row gets its started_at with the ending report: one statement less per batch here.
    const { rows } = await sql<{ id: string; job_id: string; project_id: string; account_id: string; idx: number }>`
      update tasks set status = 'running', started_at = v.column3, status_reason = v.column4
      from ${values}
      where tasks.id = v.column1 and tasks.lease_token = v.column2 and tasks.status in (${sql.join(STARTED_FROM)})
      returning id, job_id, project_id, account_id, idx`.execute(t.tx);
    const byId = new Map(rows.map((row) => [row.id, row]));
    for (const r of run) {
      const row = byId.get(r.task_id);
      if (!row) continue;
      t.emit({
        type: 'task.status', accountId: row.account_id, projectId: row.project_id, jobId: row.job_id,
        data: { job_id: row.job_id, task_id: r.task_id, index: row.idx, status: 'running', attempt: r.attempt, node: r.node },
      });
    }
  }
}
