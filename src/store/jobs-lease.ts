/**
 * Leasing work to workers (SPEC §8). A lease is a token on the task row plus an expiry; every later report
 * names the token, so a stale attempt can never complete a task. One transaction leases a whole batch:
 * PostgreSQL locks the candidate rows with FOR UPDATE SKIP LOCKED so concurrent leasers never wait on
 * each other; SQLite has one writer. The guarded UPDATE (status = 'queued') is the compare-and-set.
 * On PostgreSQL the whole lease is one statement (jobs-lease-postgres.ts); shared parts: jobs-lease-common.ts.
 *
 * Queue order: priority (high first), then when the task became available, then id (FIFO).
 *
 * Prefetch: a worker running short tasks may ask for `prefetch` tasks beyond its free slots, held until a
 * slot frees (worker/agent.ts). Those come only from jobs already running (or starting in this lease) and
 * only as a continuation of queue order: the first queued task of a job that has not started stops them.
 * So a job nobody has started stays `queued` (cancel-queued still applies to it), and a higher-priority
 * job is never passed by prefetched work; it waits at most for the few tasks already held.
 */
import { sql } from 'kysely';
import { nowIso } from '../core/clock.js';
import type { LeasedTask } from '../core/model.js';
import { allowedFrom, TASK_TRANSITIONS } from '../core/states.js';
import { stateList } from './sqlite-inline.js';
import type { TxContext } from './tx.js';
import { uniqueRuns, valuesTable } from './values-table.js';
import { leasePostgresInTx } from './jobs-lease-postgres.js';
import { emitLeaseEvents, LEASABLE, leasedTasks, leaseTerms, TO_RUNNING_JOB, type LeaseRequest } from './jobs-lease-common.js';

export type { LeaseRequest };

/** A start report applies only to a leased task. */
const STARTED_FROM = allowedFrom(TASK_TRANSITIONS, 'running').filter((s) => s !== 'queued');

export async function leaseInTx(t: TxContext, req: LeaseRequest): Promise<LeasedTask[]> {
  const extra = Math.max(0, req.prefetch ?? 0);
  if (req.slots <= 0 && extra <= 0) return [];
  // PostgreSQL: the same lease as one statement (each statement is a network round trip there).
  if (t.dialect === 'postgres') return leasePostgresInTx(t, req, extra);
  const now = nowIso();
  // The tasks table alone, in the order of its queue index (migration 003), up to the LIMIT.
  const candidates = await t.tx.selectFrom('tasks').select(['id', 'job_id'])
    .where('status', '=', 'queued').where('profile', '=', req.profile).where('available_at', '<=', now)
    .orderBy('priority', 'desc').orderBy('available_at').orderBy('id').limit(Math.max(0, req.slots) + extra)
    .execute();
  const picked = candidates.slice(0, Math.max(0, req.slots));
  const later = [...new Set(candidates.slice(picked.length).map((c) => c.job_id))];
  const runningJobs = later.length === 0 ? [] : await t.tx.selectFrom('jobs').select('id').where('id', 'in', later).where('status', '=', 'running').execute();
  const running = new Set([...picked.map((c) => c.job_id), ...runningJobs.map((j) => j.id)]);
  const held: string[] = [];
  for (const c of candidates.slice(picked.length)) {
    if (!running.has(c.job_id)) break;
    held.push(c.id);
  }
  if (picked.length + held.length === 0) return [];

  const lease = leaseTerms(t, req, now);
  const leased = await t.tx.updateTable('tasks')
    .set((eb) => ({
      status: 'preparing', attempt: eb('attempt', '+', 1), worker_id: req.workerId, lease_token: lease.token,
      lease_expires_at: lease.expires, node: req.node,
      status_reason: held.length === 0 ? lease.reason : eb.case().when('id', 'in', held).then(lease.waiting).else(lease.reason).end(),
    }))
    .where('id', 'in', [...picked.map((c) => c.id), ...held]).where('status', 'in', LEASABLE)
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
  const started = starting.length === 0 ? [] : await t.tx.updateTable('jobs').set({ status: 'running', started_at: now, status_reason: lease.reason })
    .where('id', 'in', starting).where('status', 'in', TO_RUNNING_JOB).returning(['id', 'account_id', 'project_id']).execute();
  emitLeaseEvents(t, req, lease, leased, started);
  return leasedTasks(lease, leased, new Map(jobs.map((j) => [j.id, j])));
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
      where tasks.id = v.column1 and tasks.lease_token = v.column2 and tasks.status in (${stateList(STARTED_FROM)})
      returning id, job_id, project_id, account_id, idx`.execute(t.tx);
    if (rows.length > 0) t.hasXid = true;
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
