/**
 * The lease on PostgreSQL as one statement. On SQLite (jobs-lease.ts) a lease is several statements, which
 * cost nothing in-process; here each is a network round trip, and the lease sits on both hot paths (a
 * submit's direct dispatch, and every report-and-lease of a fan-out). Same rules, written as CTEs:
 *
 *   cand      the next `slots + prefetch` queued tasks in queue order, locked (FOR UPDATE SKIP LOCKED):
 *             the tasks table alone, read in its queue index's order up to the LIMIT (migration 003)
 *   numbered  their position n in queue order, and their job's status
 *   stop      prefetch ends at the first task past the free slots whose job is neither running nor among
 *             the jobs the free slots take (jobs-lease.ts: prefetch only continues running jobs)
 *   leased    the guarded UPDATE (status still leasable), a waiting reason for the held ones
 *   att       their attempt rows
 *   started   their jobs that were queued: now running
 *
 * Data-modifying CTEs all see the statement's snapshot: the final SELECT reads each job's unchanging
 * columns, and which jobs started comes from `started` itself.
 */
import { sql } from 'kysely';
import { nowIso } from '../core/clock.js';
import type { LeasedTask } from '../core/model.js';
import { announceLease, LEASABLE, leaseTerms, TO_RUNNING_JOB, type LeasedJob, type LeasedRow, type LeaseRequest } from './jobs-lease-common.js';
import { PREPARED } from './pg-prepared.js';
import type { TxContext } from './tx.js';

type Row = LeasedRow & LeasedJob & { n: string; started_account_id: string | null; started_project_id: string | null };

export async function leasePostgresInTx(t: TxContext, req: LeaseRequest, extra: number): Promise<LeasedTask[]> {
  const now = nowIso();
  const slots = Math.max(0, req.slots);
  const limit = slots + extra;
  const lease = leaseTerms(t, req, now);
  const { rows } = await sql<Row>`${sql.raw(PREPARED)}
    with cand as materialized (
      select id, job_id, priority, available_at from tasks
      where status = 'queued' and profile = ${req.profile} and available_at <= ${now}
      order by priority desc, available_at, id
      limit ${limit}
      for update skip locked
    ),
    numbered as (
      select cand.*, j.status as job_status, row_number() over (order by cand.priority desc, cand.available_at, cand.id) as n
      from cand join jobs j on j.id = cand.job_id
    ),
    stop as (
      select coalesce(min(n), ${limit + 1}) as at from numbered
      where n > ${slots} and job_status <> 'running' and job_id not in (select job_id from numbered where n <= ${slots})
    ),
    chosen as (
      select numbered.id, numbered.n from numbered, stop where numbered.n <= ${slots} or numbered.n < stop.at
    ),
    leased as (
      update tasks set status = 'preparing', attempt = tasks.attempt + 1, worker_id = ${req.workerId},
        lease_token = ${lease.token}, lease_expires_at = ${lease.expires}, node = ${req.node},
        status_reason = case when chosen.n <= ${slots} then ${lease.reason} else ${lease.waiting} end
      from chosen
      where tasks.id = chosen.id and tasks.status in (${sql.join(LEASABLE)})
      returning tasks.id, tasks.job_id, tasks.project_id, tasks.account_id, tasks.idx, tasks.attempt, tasks.payload,
        tasks.runner_command, tasks.kind, chosen.n
    ),
    att as (
      insert into attempts (task_id, attempt, job_id, worker_id, node, status)
      select id, attempt, job_id, ${req.workerId}, ${req.node}, 'preparing' from leased
    ),
    started as (
      update jobs set status = 'running', started_at = ${now}, status_reason = ${lease.reason}
      where id in (select job_id from leased) and status in (${sql.join(TO_RUNNING_JOB)})
      returning id, account_id, project_id
    )
    select leased.*, j.revision_id, j.content_hash, j.env, j.timeout_s, j.checkpoint, j.runner_command as job_runner_command,
      j.tasks_total, p.name as project, s.account_id as started_account_id, s.project_id as started_project_id
    from leased
    join jobs j on j.id = leased.job_id
    join projects p on p.id = j.project_id
    left join started s on s.id = leased.job_id
    order by leased.n`.execute(t.tx);
  if (rows.length === 0) return [];
  t.hasXid = true;
  const jobs = new Map<string, LeasedJob>();
  const started = new Map<string, { id: string; account_id: string; project_id: string }>();
  for (const r of rows) {
    const row = r as Row & { job_runner_command: string | null };
    jobs.set(row.job_id, {
      revision_id: row.revision_id, content_hash: row.content_hash, env: row.env, timeout_s: row.timeout_s,
      checkpoint: row.checkpoint, runner_command: row.job_runner_command, tasks_total: row.tasks_total, project: row.project,
    });
    if (row.started_account_id !== null) started.set(row.job_id, { id: row.job_id, account_id: row.started_account_id, project_id: row.started_project_id! });
  }
  return announceLease(t, req, lease, rows, jobs, [...started.values()]);
}
