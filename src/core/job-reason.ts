/**
 * Why an unfinished job waits (SPEC §6 `status_reason`: always filled while a job is not finished), from
 * its task counts and the live workers. Pure; finished jobs keep the reason stored when they finished.
 */
import type { TaskCounts, Worker } from './model.js';
import { requirementsReason } from './worker-fit.js';

/** The account's running_tasks quota and its leased tasks now, when it has the quota. */
export interface RunningCap { limit: number; leased: number }

export function jobWaitReason(job: { profile: string; stored: string | null; requirements?: Record<string, unknown> }, c: TaskCounts, live: Worker[], cap: RunningCap | null = null): string {
  const total = c.queued + c.preparing + c.running + c.completed + c.failed + c.cancelled;
  const eligible = live.filter((w) => w.profile === job.profile);
  const capped = cap !== null && c.queued > 0 && cap.leased >= cap.limit
    ? `the account's running_tasks quota is in use (${cap.leased} of ${cap.limit})` : null;
  if (c.running > 0) {
    const queued = c.queued + c.preparing > 0 ? `, ${c.queued + c.preparing} waiting` : '';
    return `${c.running} of ${total} task(s) running${queued}${capped ? `: ${capped}` : ''}`;
  }
  if (c.preparing > 0) return job.stored?.startsWith('preparing') ? job.stored : `preparing the runtime for ${c.preparing} task(s)`;
  if (c.queued > 0 && eligible.length === 0) {
    return job.profile === 'cpu' ? 'waiting for a worker (none online)' : `waiting for a worker with profile ${job.profile} (none online)`;
  }
  // Tasks are leased only by workers that meet the job's requirements (core/worker-fit.ts).
  const unfit = c.queued > 0 && job.requirements ? requirementsReason(job.requirements, eligible) : null;
  if (unfit) return unfit;
  if (capped) return `waiting: ${capped}`;
  if (c.queued > 0) {
    const slots = eligible.reduce((n, w) => n + w.slots, 0);
    return `waiting for a free slot: ${c.queued} task(s) queued, ${eligible.length} worker(s) with ${slots} slot(s) busy or backing off`;
  }
  return job.stored ?? 'finishing';
}

/**
 * What to do about a finished job (`recommended_action`): null when nothing failed (completed, or
 * cancelled without a failure: a cancel is the user's own doing), else where to read why tasks failed.
 */
export function finishedJobAction(c: Pick<TaskCounts, 'failed'>): string | null {
  return c.failed > 0 ? 'Read GET /api/v1/jobs/:id/tasks for each failed task\'s error and output.' : null;
}
