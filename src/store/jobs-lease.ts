/**
 * Leasing work to workers (SPEC §8). A lease is a token on the task row plus an expiry; every later report
 * names the token, so a stale attempt can never complete a task. One transaction leases a whole batch:
 * PostgreSQL locks the candidate rows with FOR UPDATE SKIP LOCKED so concurrent leasers never wait on
 * each other; SQLite has one writer. The guarded UPDATE (status = 'queued') is the compare-and-set.
 * On PostgreSQL the whole lease is one statement (jobs-lease-postgres.ts), on SQLite a few statements
 * prepared once (jobs-lease-sqlite.ts); shared parts: jobs-lease-common.ts.
 *
 * Queue order: priority (high first), then when the task became available, then id (FIFO), while one
 * (account, project) has tasks queued. With more, the fair order of core/fair-share.ts: each slot to the
 * account, then the project, holding the fewest leased tasks (docs/decisions.md, "Fair sharing").
 *
 * Prefetch: a worker running short tasks may ask for `prefetch` tasks beyond its free slots, held until a
 * slot frees (worker/agent.ts). Those come only from jobs already running (or starting in this lease) and
 * only as a continuation of queue order: the first queued task of a job that has not started stops them.
 * So a job nobody has started stays `queued` (cancel-queued still applies to it), and a higher-priority
 * job is never passed by prefetched work; it waits at most for the few tasks already held.
 *
 * The running_tasks quota (SPEC §11): an account never holds more leased tasks (preparing or running,
 * held ones included) than its cap; its other tasks are passed over, so other accounts' go ahead.
 */
import { sql } from 'kysely';
import type { LeasedTask } from '../core/model.js';
import { allowedFrom, TASK_TRANSITIONS } from '../core/states.js';
import { stateList } from './sqlite-inline.js';
import type { TxContext } from './tx.js';
import { uniqueRuns, valuesTable } from './values-table.js';
import { leasePostgresInTx } from './jobs-lease-postgres.js';
import { leaseSqliteInTx } from './jobs-lease-sqlite.js';
import type { LeaseRequest } from './jobs-lease-common.js';

export type { LeaseRequest };

/** A start report applies only to a leased task. */
const STARTED_FROM = allowedFrom(TASK_TRANSITIONS, 'running').filter((s) => s !== 'queued');

export async function leaseInTx(t: TxContext, req: LeaseRequest): Promise<LeasedTask[]> {
  const extra = Math.max(0, req.prefetch ?? 0);
  if (req.slots <= 0 && extra <= 0) return [];
  // PostgreSQL: the lease as one statement (each statement is a network round trip there); SQLite: its
  // statements prepared once on the connection (jobs-lease-sqlite.ts).
  return t.dialect === 'postgres' ? leasePostgresInTx(t, req, extra) : leaseSqliteInTx(t, req, extra);
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
