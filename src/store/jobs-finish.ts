/**
 * Finishing jobs. `tasks_open` counts tasks not yet ended (a map_reduce job counts its reduce task from the
 * start). The transaction that brings it to zero decides the job's final status from its task counts; for
 * map_reduce, the one that brings it to one (only the reduce left) creates the reduce task with the map
 * results in task order. Both run inside the ending transaction, so they happen exactly once.
 */
import { jobOutcome } from '../core/aggregate.js';
import { nowIso } from '../core/clock.js';
import { allowedFrom, JOB_TRANSITIONS } from '../core/states.js';
import { reducePayload, type ReducePlan } from '../core/job-plan.js';
import { finishedJobAction } from '../core/job-reason.js';
import type { TaskCounts } from '../core/model.js';
import { taskRow } from './jobs-create.js';
import type { Kysely } from 'kysely';
import type { Database } from './db-types.js';
import type { Tx, TxContext } from './tx.js';

export async function taskCounts(tx: Tx | Kysely<Database>, jobId: string): Promise<TaskCounts> {
  const rows = await tx.selectFrom('tasks').select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .where('job_id', '=', jobId).groupBy('status').execute();
  const counts: TaskCounts = { queued: 0, preparing: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };
  for (const r of rows) if (r.status in counts) counts[r.status as keyof TaskCounts] = Number(r.n);
  return counts;
}

export async function finishJobIfDone(t: TxContext, jobId: string, ended: number): Promise<void> {
  const rows = await t.tx.updateTable('jobs').set((eb) => ({ tasks_open: eb('tasks_open', '-', ended) }))
    .where('id', '=', jobId)
    .returning(['tasks_open', 'type', 'reduce', 'account_id', 'project_id', 'priority', 'profile', 'requirements', 'status', 'started_at']).execute();
  const job = rows[0];
  if (!job) return;
  if (job.type === 'map_reduce' && job.reduce && job.tasks_open === 1) {
    // A cancelled map means the job was cancelled: the reduce never starts, and the job finishes now.
    if (await startReduce(t, jobId, job, JSON.parse(job.reduce) as ReducePlan)) return;
    await t.tx.updateTable('jobs').set({ tasks_open: 0 }).where('id', '=', jobId).execute();
  } else if (job.tasks_open > 0) {
    return;
  }
  const counts = await taskCounts(t.tx, jobId);
  const reduce = job.type === 'map_reduce'
    ? (await t.tx.selectFrom('tasks').select('status').where('job_id', '=', jobId).where('kind', '=', 'reduce').executeTakeFirst())?.status ?? null
    : null;
  const status = jobOutcome(counts, { reduce });
  if (status === null) return;
  const now = nowIso();
  const reason = `${counts.completed} completed, ${counts.failed} failed, ${counts.cancelled} cancelled`;
  const error = status === 'failed' ? JSON.stringify({ code: 'tasks_failed', message: `Every task failed (${reason}); see the tasks' errors and output.` }) : null;
  const done = await t.tx.updateTable('jobs')
    .set({ status, status_reason: reason, finished_at: now, error, started_at: job.started_at ?? now,
      recommended_action: finishedJobAction(counts) })
    .where('id', '=', jobId).where('status', 'in', allowedFrom(JOB_TRANSITIONS, status)).executeTakeFirst();
  if (Number(done.numUpdatedRows) === 0) return;
  const base = { accountId: job.account_id, projectId: job.project_id, jobId };
  t.emit({ ...base, type: 'job.status', data: { job_id: jobId, status, status_reason: reason } });
  t.emit({ ...base, type: 'job.completed', data: { job_id: jobId, status, tasks: counts } });
}

/** Creates the reduce task unless a map was cancelled; true when the reduce is (or already was) under way. */
async function startReduce(t: TxContext, jobId: string, job: { account_id: string; project_id: string; priority: number; profile: string; requirements: string }, plan: ReducePlan): Promise<boolean> {
  const exists = await t.tx.selectFrom('tasks').select('id').where('job_id', '=', jobId).where('kind', '=', 'reduce').executeTakeFirst();
  if (exists) return true;
  const maps = await t.tx.selectFrom('tasks').select(['idx', 'status', 'result']).where('job_id', '=', jobId)
    .where('kind', '=', 'map').orderBy('idx').execute();
  if (maps.some((m) => m.status === 'cancelled')) return false;
  const payload = reducePayload(plan, maps.map((m) => ({ index: m.idx, status: m.status, result: m.result ? JSON.parse(m.result) : null })));
  const now = nowIso();
  // The reduce runs under the job's requirements, as its maps did.
  await t.tx.insertInto('tasks').values(taskRow(jobId, { ...job, requirements: JSON.parse(job.requirements) as Record<string, unknown> }, {
    index: plan.index, kind: 'reduce', payload, item: null, runner_command: plan.runner_command, meta: {},
  }, now, null)).execute();
  t.addWork();
  t.emit({ accountId: job.account_id, projectId: job.project_id, jobId, type: 'task.status', data: { job_id: jobId, index: plan.index, status: 'queued', kind: 'reduce' } });
  return true;
}
