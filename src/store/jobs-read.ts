/** Reading jobs, tasks and their attempts, scoped by account (another account's job reads as absent). */
import type { AttemptRecord, JobRecord, Page, PageQuery, TaskCounts, TaskRecord } from '../core/model.js';
import { TASK_LEASED_STATES } from '../core/states.js';
import type { JobsTable, TasksTable } from './db-types.js';
import { taskCounts } from './jobs-finish.js';
import { decodeCursor, pageOf } from './rows.js';
import type { StoreContext } from './tx.js';

const json = <T>(text: string | null, fallback: T): T => (text === null || text === '' ? fallback : (JSON.parse(text) as T));

export function toJob(r: JobsTable & { project: string }): JobRecord {
  return {
    id: r.id, account_id: r.account_id, project_id: r.project_id, project: r.project, revision_id: r.revision_id,
    content_hash: r.content_hash, type: r.type, status: r.status, status_reason: r.status_reason, created_at: r.created_at,
    started_at: r.started_at, finished_at: r.finished_at, timeout_s: r.timeout_s, queue_timeout_s: r.queue_timeout_s,
    max_attempts: r.max_attempts, backoff_s: Number(r.backoff_s), checkpoint: r.checkpoint === 1, priority: r.priority,
    runner_command: json(r.runner_command, null), env: json(r.env, {}), meta: json(r.meta, null), variant: json(r.variant, null),
    profile: r.profile, requirements: json(r.requirements, {}), error: json(r.error, null),
    recommended_action: r.recommended_action, tasks_total: r.tasks_total, tasks_open: r.tasks_open,
    reduce: json(r.reduce, null), objective: json(r.objective, null), spec: json(r.spec, {}),
  };
}

export function toTask(r: TasksTable): TaskRecord {
  return {
    id: r.id, job_id: r.job_id, index: r.idx, kind: r.kind, status: r.status, status_reason: r.status_reason,
    attempt: r.attempt, exit_code: r.exit_code, error: json(r.error, null), output: r.output, output_tail: r.output_tail,
    latest_progress: json(r.latest_progress, null), item: json(r.item, null), payload: json(r.payload, {}),
    result: json(r.result, null), result_quality: r.result_quality === null ? null : Number(r.result_quality),
    result_warnings: json(r.result_warnings, []), started_at: r.started_at, finished_at: r.finished_at,
    duration_ms: r.duration_ms, cold_start: json(r.cold_start, null), node: r.node, meta: json(r.meta, {}),
  };
}

export function jobReads({ conn }: StoreContext) {
  const db = conn.db;
  const jobQuery = () => db.selectFrom('jobs').innerJoin('projects', 'projects.id', 'jobs.project_id')
    .selectAll('jobs').select('projects.name as project');
  /**
   * An account's tasks in these states (the task quotas). One state is compared with `=`: SQLite reads a
   * partial index only for a WHERE that names its condition as the index does (`status = 'queued'`).
   */
  const accountTaskCount = async (accountId: string, states: readonly string[]): Promise<number> => {
    const row = await db.selectFrom('tasks').select((eb) => eb.fn.countAll<number>().as('n')).where('account_id', '=', accountId)
      .where('status', states.length === 1 ? '=' : 'in', states.length === 1 ? states[0]! : [...states]).executeTakeFirstOrThrow();
    return Number(row.n);
  };
  return {
    async getJob(accountId: string, id: string): Promise<(JobRecord & { counts: TaskCounts }) | null> {
      const row = await jobQuery().where('jobs.id', '=', id).where('jobs.account_id', '=', accountId).executeTakeFirst();
      if (!row) return null;
      return { ...toJob(row), counts: await taskCounts(db, id) };
    },
    async listJobs(accountId: string, filter: { projectId?: string; status?: string }, { limit, cursor }: PageQuery): Promise<Page<JobRecord & { counts: TaskCounts }>> {
      const after = decodeCursor(cursor);
      let q = jobQuery().where('jobs.account_id', '=', accountId).orderBy('jobs.id', 'desc').limit(limit + 1);
      if (filter.projectId) q = q.where('jobs.project_id', '=', filter.projectId);
      if (filter.status) q = q.where('jobs.status', '=', filter.status);
      if (after !== null) q = q.where('jobs.id', '<', String(after));
      const page = pageOf((await q.execute()).map(toJob), limit, (j) => j.id);
      const items = await Promise.all(page.items.map(async (j) => ({ ...j, counts: await taskCounts(db, j.id) })));
      return { items, next_cursor: page.next_cursor };
    },
    async listTasks(jobId: string, { limit, cursor }: PageQuery): Promise<Page<TaskRecord & { attempts: AttemptRecord[] }>> {
      const after = decodeCursor(cursor);
      let q = db.selectFrom('tasks').selectAll().where('job_id', '=', jobId).orderBy('idx').limit(limit + 1);
      if (after !== null) q = q.where('idx', '>', Number(after));
      const rows = await q.execute();
      const ids = rows.map((r) => r.id);
      const attempts = ids.length === 0 ? [] : await db.selectFrom('attempts').selectAll().where('task_id', 'in', ids)
        .orderBy('attempt').execute();
      const tasks = rows.map((r) => ({
        ...toTask(r),
        attempts: attempts.filter((a) => a.task_id === r.id).map((a) => ({
          attempt: a.attempt, node: a.node, exit_code: a.exit_code, error: json(a.error, null),
          // A running attempt's row gets its started_at with its ending report (jobs-lease.ts, one statement
          // less per start); while it runs, the task's own started_at is this attempt's.
          started_at: a.started_at ?? (a.attempt === r.attempt && r.status === 'running' ? r.started_at : null), finished_at: a.finished_at,
        })),
      }));
      return pageOf(tasks, limit, (task) => task.index);
    },
    /** Every task of a job in index order, without payloads or outputs: what results are made of. */
    async resultRows(jobId: string): Promise<TaskRecord[]> {
      const rows = await db.selectFrom('tasks').selectAll().where('job_id', '=', jobId).orderBy('idx').execute();
      return rows.map((r) => ({ ...toTask(r), output: '', payload: null }));
    },
    // Through tasks_group_queue, its first column (its WHERE names the state as this statement does; sqlite-inline.ts).
    queuedTaskCount: (accountId: string) => accountTaskCount(accountId, ['queued']),
    // Through tasks_leases (leased tasks only, a few per worker slot), as the lease counts them.
    leasedTaskCount: (accountId: string) => accountTaskCount(accountId, TASK_LEASED_STATES),
  };
}
