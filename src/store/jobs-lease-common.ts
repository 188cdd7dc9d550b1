/**
 * What both lease implementations share (jobs-lease.ts on SQLite, jobs-lease-postgres.ts): the request, the
 * lease's token, expiry and reasons, the guards, and what a lease announces and hands the worker.
 */
import { randomBytes } from 'node:crypto';
import { addSeconds } from '../core/clock.js';
import type { LeasedTask } from '../core/model.js';
import type { Capacity } from '../core/worker-fit.js';
import { allowedFrom, JOB_TRANSITIONS, TASK_TRANSITIONS } from '../core/states.js';
import type { TxContext } from './tx.js';

export interface LeaseRequest {
  workerId: string; node: string; profile: string;
  /** Free slots: up to this many tasks in queue order. */
  slots: number;
  /** Up to this many more, held for the slots as they free (the prefetch rules: jobs-lease.ts). */
  prefetch?: number;
  /** What the worker offers: only tasks whose requirements it meets are leased (core/worker-fit.ts). */
  capacity?: Capacity;
}

/**
 * The (account, project) pairs with queued tasks a fair lease looks at, at most (core/fair-share.ts).
 * Pairs past them (in id order) wait until earlier ones drain: a bound on a lease's work that a
 * self-hosted queue is not expected to reach.
 */
export const MAX_FAIR_GROUPS = 256;

/** A job starts running only from queued (its first lease). */
export const TO_RUNNING_JOB = allowedFrom(JOB_TRANSITIONS, 'running');

/** Tasks a lease may take (the compare-and-set of every lease statement). */
export const LEASABLE = allowedFrom(TASK_TRANSITIONS, 'preparing');

export interface LeaseTerms { token: string; expires: string; reason: string; waiting: string }

export function leaseTerms(t: TxContext, req: LeaseRequest, now: string): LeaseTerms {
  return {
    token: randomBytes(16).toString('hex'), expires: addSeconds(now, t.leaseSeconds),
    reason: `preparing runtime on ${req.node}`, waiting: `leased by ${req.node}, waiting for a free slot`,
  };
}

export interface LeasedRow { id: string; job_id: string; project_id: string; account_id: string; idx: number; attempt: number; payload: string; runner_command: string | null; kind: string }
export interface LeasedJob { revision_id: string; content_hash: string; env: string; timeout_s: number; checkpoint: number; runner_command: string | null; tasks_total: number; project: string }

/** The events of a lease, in order: jobs that started, then each task now preparing (the same events
 * jobs-lease-postgres.ts writes in its statement). */
export function emitLeaseEvents(
  t: TxContext, req: LeaseRequest, lease: LeaseTerms, leased: LeasedRow[],
  started: Array<{ id: string; account_id: string; project_id: string }>,
): void {
  for (const job of started) {
    t.emit({ type: 'job.status', accountId: job.account_id, projectId: job.project_id, jobId: job.id, data: { job_id: job.id, status: 'running', status_reason: lease.reason } });
  }
  for (const r of leased) {
    t.emit({
      type: 'task.status', accountId: r.account_id, projectId: r.project_id, jobId: r.job_id,
      data: { job_id: r.job_id, task_id: r.id, index: r.idx, status: 'preparing', attempt: r.attempt, node: req.node },
    });
  }
}

/** The leased tasks as the worker gets them. */
export function leasedTasks(lease: LeaseTerms, leased: LeasedRow[], jobs: Map<string, LeasedJob>): LeasedTask[] {
  return leased.map((r) => {
    const job = jobs.get(r.job_id)!;
    return {
      task_id: r.id, job_id: r.job_id, project_id: r.project_id, account_id: r.account_id, project: job.project,
      revision_id: job.revision_id, content_hash: job.content_hash, index: r.idx, task_count: job.tasks_total,
      attempt: r.attempt, lease_token: lease.token, payload: JSON.parse(r.payload), kind: r.kind,
      runner_command: r.runner_command ? JSON.parse(r.runner_command) : job.runner_command ? JSON.parse(job.runner_command) : null,
      env: JSON.parse(job.env), timeout_s: job.timeout_s, checkpoint: job.checkpoint === 1,
    };
  });
}
