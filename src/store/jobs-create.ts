/**
 * Creating jobs: one transaction per call, however many jobs (the batch route sends up to 1,000), with
 * multi-row inserts so a 100,000-task fan-out is a few statements, not 100,000. Idempotency keys live in
 * their own table: the same key with the same request within 24 h returns the first job; with another
 * request, 409. Each job gets a `job.created` event in the same transaction.
 */
import { isDeepStrictEqual } from 'node:util';
import { nowIso } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { requirementColumns } from '../core/worker-fit.js';
import { sql, type CompiledQuery, type Kysely, type RawBuilder } from 'kysely';
import { bulkInsert, HOIST_MIN_ROWS, rowsSource, type ColumnTypes } from './pg-bulk.js';
import { PREPARED } from './pg-prepared.js';
import { fixedStatement } from './pg-template.js';
import { insertRows } from './sqlite-rows.js';
import { NOTIFY_CHANNEL, WORK_CHANNEL } from './event-feed.js';
import { eventRows, type EventInput, type Tx, type TxContext } from './tx.js';

export const IDEMPOTENCY_WINDOW_MS = 24 * 3600 * 1000;

export interface NewTask { index: number; kind: string; payload: unknown; item: unknown; runner_command: string[] | null; meta: Record<string, unknown> }

export interface NewJob {
  account_id: string; project_id: string; project: string; revision_id: string; content_hash: string; type: string;
  priority: number; timeout_s: number; queue_timeout_s: number | null; max_attempts: number; backoff_s: number;
  checkpoint: boolean; runner_command: string[] | null; env: Record<string, string>; meta: unknown; variant: unknown;
  profile: string; requirements: Record<string, unknown>; reduce: unknown; objective: unknown;
  spec: Record<string, unknown>; idempotency: { key: string; request_hash: string } | null; tasks: NewTask[];
  /** tasks.length, plus one for a map_reduce job's reduce task, created when the maps have ended. */
  tasks_total: number;
  /**
   * The project's env when the job was planned (from a project read this server may have kept): the
   * PostgreSQL insert then creates nothing unless the project still has this env and `revision_id` as its
   * active revision, and says the batch is stale (jobs-store.ts). Unset: no such check.
   */
  project_env?: Record<string, string>;
}

export type CreateOutcome = { job_id: string; replayed: boolean; created_at: string };

/** PostgreSQL's jobs without tasks (SQLite uses sqlite-rows.ts): rows per INSERT, under its 65,535 bound values at ~30 columns. */
const CHUNK = 1_000;

async function insertChunked<T extends Record<string, unknown>>(tx: Tx, table: 'tasks' | 'jobs', rows: T[]): Promise<void> {
  for (let i = 0; i < rows.length; i += CHUNK) {
    await tx.insertInto(table).values(rows.slice(i, i + CHUNK) as never).execute();
  }
}

async function replayOf(tx: Tx, job: NewJob, now: string): Promise<CreateOutcome | null> {
  if (!job.idempotency) return null;
  const row = await tx.selectFrom('idempotency_keys').selectAll()
    .where('account_id', '=', job.account_id).where('key', '=', job.idempotency.key).executeTakeFirst();
  if (!row) return null;
  if (Date.parse(now) - Date.parse(row.created_at) > IDEMPOTENCY_WINDOW_MS) {
    await tx.deleteFrom('idempotency_keys').where('account_id', '=', job.account_id).where('key', '=', job.idempotency.key).execute();
    return null;
  }
  if (row.request_hash !== job.idempotency.request_hash) {
    throw new AppError('idempotency_conflict', { key: job.idempotency.key, job_id: row.job_id }, { job_id: row.job_id });
  }
  return { job_id: row.job_id, replayed: true, created_at: row.created_at };
}

/**
 * A job's idempotency key: the first job under it (a replay), a conflict, or the new job's id when this
 * transaction claimed the key. On PostgreSQL another group commit may be inserting the same key right
 * now, unseen by the read: the claim waits for it and, once it has committed, does nothing, and the key
 * is read again (a new statement sees that commit). A plain insert failed there with a unique violation,
 * which answered 500 to one of 20 concurrent submits of one key (review, 1 run in 5).
 */
async function claimKey(tx: Tx, job: NewJob, now: string): Promise<CreateOutcome | string | null> {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    const replay = await replayOf(tx, job, now);
    if (replay) return replay;
    if (!job.idempotency) return null;
    const id = newId('job');
    const claimed = await tx.insertInto('idempotency_keys').values({
      account_id: job.account_id, key: job.idempotency.key, request_hash: job.idempotency.request_hash, job_id: id, created_at: now,
    }).onConflict((oc) => oc.columns(['account_id', 'key']).doNothing()).executeTakeFirst();
    if (Number(claimed.numInsertedOrUpdatedRows ?? 0n) > 0) return id;
  }
  throw new Error(`idempotency key "${job.idempotency!.key}" was neither claimed nor found twice in a row`);
}

/**
 * Creates jobs in the caller's transaction; per-job errors (idempotency) are returned, not thrown.
 * `notifyWork`: on PostgreSQL, send the work NOTIFY with the insert (the caller knows no task of these jobs
 * will be leased in this transaction).
 */
export async function createJobsInTx(t: TxContext, jobs: NewJob[], notifyWork = false): Promise<Array<CreateOutcome | AppError>> {
  const now = nowIso();
  const out: Array<CreateOutcome | AppError> = [];
  const rows = emptyRows();
  const inserted: NewJob[] = [];
  for (const job of jobs) {
    let claim: CreateOutcome | string | null;
    try {
      claim = await claimKey(t.tx, job, now);
    } catch (err) {
      if (err instanceof AppError) { out.push(err); continue; }
      throw err;
    }
    if (claim !== null && typeof claim !== 'string') { out.push(claim); continue; }
    out.push(addJobRows(rows, job, claim ?? newId('job'), now));
    inserted.push(job);
  }
  if (t.dialect === 'postgres' && rows.jobs.length > 0 && rows.tasks.length > 0) {
    const { rows: [top] } = await t.tx.executeQuery(insertStatement(t.tx, t.columnTypes!, rows, notifyWork, projectGuards(inserted)));
    // Jobs planned from a kept project read, and the project changed: roll the whole change back.
    if (!top!.ok) throw new StaleProjects();
    t.hasXid = true;
    t.lastEventId = Math.max(t.lastEventId, Number(top!.id));
    if (notifyWork) t.workNotified = true;
  } else {
    if (!(await guardsHold(t, projectGuards(inserted)))) throw new StaleProjects();
    for (const event of rows.events) t.emit(event);
    if (t.sqlite) {
      insertRows(t.sqlite, 'jobs', rows.jobs);
      insertRows(t.sqlite, 'tasks', rows.tasks);
    } else {
      await insertChunked(t.tx, 'jobs', rows.jobs);
      await insertChunked(t.tx, 'tasks', rows.tasks);
    }
    if (rows.jobs.length > 0) t.hasXid = true;
  }
  if (rows.tasks.length > 0) t.addWork();
  return out;
}

/** Thrown inside a transaction whose guarded insert found a project changed (NewJob.project_env): nothing stays. */
export class StaleProjects extends Error {
  constructor() {
    super('a project changed since jobs were planned from it');
  }
}

/** The rows a batch of new jobs inserts, and their job.created events. */
export interface JobRows { jobs: Record<string, unknown>[]; tasks: Record<string, unknown>[]; events: EventInput[] }

const emptyRows = (): JobRows => ({ jobs: [], tasks: [], events: [] });

/** Jobs without idempotency keys need no read first: their rows, at once (the pipelined submit, jobs-store.ts). */
export function newJobRows(jobs: NewJob[]): { rows: JobRows; outcomes: CreateOutcome[] } {
  const now = nowIso();
  const rows = emptyRows();
  return { rows, outcomes: jobs.map((job) => addJobRows(rows, job, newId('job'), now)) };
}

function addJobRows(rows: JobRows, job: NewJob, id: string, now: string): CreateOutcome {
  const deadline = job.queue_timeout_s ? new Date(Date.parse(now) + job.queue_timeout_s * 1000).toISOString() : null;
  rows.jobs.push({
    id, account_id: job.account_id, project_id: job.project_id, revision_id: job.revision_id,
    content_hash: job.content_hash, type: job.type, status: 'queued',
    status_reason: 'waiting for a worker', spec: JSON.stringify(job.spec), tasks_total: job.tasks_total,
    created_at: now, started_at: null, finished_at: null, priority: job.priority, timeout_s: job.timeout_s,
    queue_timeout_s: job.queue_timeout_s, max_attempts: job.max_attempts, backoff_s: job.backoff_s,
    checkpoint: job.checkpoint ? 1 : 0, runner_command: job.runner_command ? JSON.stringify(job.runner_command) : null,
    env: JSON.stringify(job.env), meta: JSON.stringify(job.meta ?? null), variant: JSON.stringify(job.variant ?? null),
    profile: job.profile, requirements: JSON.stringify(job.requirements), error: null, recommended_action: null,
    reduce: job.reduce ? JSON.stringify(job.reduce) : null, objective: job.objective ? JSON.stringify(job.objective) : null,
    tasks_open: job.tasks_total, request_hash: job.idempotency?.request_hash ?? null,
  });
  for (const task of job.tasks) rows.tasks.push(taskRow(id, job, task, now, deadline));
  rows.events.push({
    type: 'job.created', accountId: job.account_id, projectId: job.project_id, jobId: id,
    data: { job_id: id, project: job.project, type: job.type, tasks_total: job.tasks_total, content_hash: job.content_hash },
  });
  return { job_id: id, replayed: false, created_at: now };
}

/**
 * PostgreSQL: the jobs, their tasks and their job.created events as one statement of one JSON parameter
 * per table (pg-bulk.ts), with the events' NOTIFY (and the work NOTIFY when `notifyWork`); it answers the
 * last event id. On a submit's path that is the whole change (run as its own transaction or pipelined with
 * the direct lease, jobs-store.ts), and no 45,000-parameter statements for a batch. The events are read
 * through `new_jobs`, so no event id is drawn before a job row gave the transaction its xid (tx.ts,
 * high-water.ts). Needs at least one job with at least one task.
 */
export function insertStatement(db: Kysely<any>, types: ColumnTypes, rows: JobRows, notifyWork: boolean, guards: ProjectGuard[] = []): CompiledQuery<InsertedTop> {
  const events = eventRows(rows.events);
  if (rows.tasks.length >= HOIST_MIN_ROWS) {
    return insertSql(types, rows, events, notifyWork, guards.length === 0 ? null : { count: guards.length, json: JSON.stringify(guards) }).compile(db);
  }
  // Small batches (all of a submit's, most group commits of single submits): one text per shape, compiled
  // once (pg-template.ts) and prepared once per connection (PREPARED).
  const key = ['jobs-insert', notifyWork, guards.length > 0, Object.keys(rows.jobs[0]!), Object.keys(rows.tasks[0]!), Object.keys(events[0]!)].join('|');
  const values = [JSON.stringify(rows.jobs), JSON.stringify(rows.tasks), JSON.stringify(events), guards.length, JSON.stringify(guards)];
  return fixedStatement(db, key, values, ([jobs, tasks, evs, count, json]) =>
    insertSql(types, rows, events, notifyWork, guards.length === 0 ? null : { count, json }, { jobs, tasks, events: evs }));
}

type InsertedTop = { id: number | null; ok: boolean };

/**
 * The statement of insertStatement. `json`: the three tables' rows as placeholders (pg-template.ts), for
 * the small form; otherwise the rows' JSON is written here, columns equal in every row hoisted (pg-bulk.ts).
 */
function insertSql(types: ColumnTypes, rows: JobRows, events: Record<string, unknown>[], notifyWork: boolean,
  guards: { count: unknown; json: unknown } | null, json?: { jobs: unknown; tasks: unknown; events: unknown }): RawBuilder<InsertedTop> {
  const work = notifyWork ? sql`, case when max(id) is not null then pg_notify(${WORK_CHANNEL}, '') end` : sql``;
  const ev = rowsSource(types, 'events', events, 'e', json?.events);
  const prepared = json ? sql.raw(PREPARED) : sql``;
  // The projects the jobs were planned from, as they were then: every row must still match, or nothing is inserted.
  const guard = guards === null ? sql`select true as ok` : sql`
      select count(*) = ${guards.count} as ok from projects p
      join json_to_recordset(${guards.json}::json) as g(project_id text, revision_id text, env text)
        on p.id = g.project_id and p.active_revision_id = g.revision_id and p.env::jsonb = g.env::jsonb`;
  const when = sql`(select ok from guard)`;
  return sql<InsertedTop>`${prepared}
    with guard as (${guard}),
    new_jobs as (${bulkInsert(types, 'jobs', rows.jobs, when, json?.jobs)} returning id),
    new_tasks as (${bulkInsert(types, 'tasks', rows.tasks, when, json?.tasks)}),
    ev as (
      insert into events (${sql.join(ev.columns.map((c) => sql.ref(c)))})
      select ${sql.join(ev.values)} from ${ev.from}
      join new_jobs j on j.id = ${ev.values[ev.columns.indexOf('job_id')]}
      order by e.ord
      returning id
    )
    select max(id) as id, (select ok from guard) as ok,
      case when max(id) is not null then pg_notify(${NOTIFY_CHANNEL}, max(id)::text) end${work} from ev`;
}

/** The guarded projects as they are now: one prepared text on SQLite, whatever the number of projects. */
const GUARD_READ = `select id, active_revision_id, env from projects where id in (select value from json_each(?))`;

/**
 * SQLite (and PostgreSQL's zero-task case): the guards checked by a read in the transaction. On SQLite the
 * read is a statement prepared once on the connection (as sqlite-rows.ts's inserts are), not built and
 * compiled by Kysely for every group commit: ~1 µs less CPU a job in commits of 8 (scratch store-only loop,
 * three alternating runs each), about 1 % of what a single submit costs.
 */
async function guardsHold(t: TxContext, guards: ProjectGuard[]): Promise<boolean> {
  if (guards.length === 0) return true;
  const ids = guards.map((g) => g.project_id);
  const rows = t.sqlite
    ? t.sqlite.prepare(GUARD_READ).all(JSON.stringify(ids)) as Array<{ id: string; active_revision_id: string | null; env: string }>
    : await t.tx.selectFrom('projects').select(['id', 'active_revision_id', 'env']).where('id', 'in', ids).execute();
  const byId = new Map(rows.map((r) => [r.id, r]));
  return guards.every((g) => {
    const row = byId.get(g.project_id);
    return row !== undefined && row.active_revision_id === g.revision_id && isDeepStrictEqual(JSON.parse(row.env), JSON.parse(g.env));
  });
}

/** A project as a job was planned from it (NewJob.project_env): what the guarded insert compares. */
export interface ProjectGuard { project_id: string; revision_id: string; env: string }

/** One guard per project and revision the jobs were planned from, for the jobs that carry their project's env. */
export function projectGuards(jobs: NewJob[]): ProjectGuard[] {
  const guards = new Map<string, ProjectGuard>();
  for (const job of jobs) {
    if (!job.project_env) continue;
    const env = JSON.stringify(job.project_env);
    guards.set(`${job.project_id}\u0000${job.revision_id}\u0000${env}`, { project_id: job.project_id, revision_id: job.revision_id, env });
  }
  return [...guards.values()];
}

export function taskRow(jobId: string, job: Pick<NewJob, 'account_id' | 'project_id' | 'priority' | 'profile' | 'requirements'>, task: NewTask, now: string, deadline: string | null) {
  const needs = requirementColumns(job.requirements);
  return {
    id: newId('tsk'), job_id: jobId, project_id: job.project_id, idx: task.index, status: 'queued',
    status_reason: 'waiting for a worker', created_at: now, started_at: null, finished_at: null,
    account_id: job.account_id, kind: task.kind, priority: job.priority, profile: job.profile, payload: JSON.stringify(task.payload ?? {}),
    item: JSON.stringify(task.item ?? null), runner_command: task.runner_command ? JSON.stringify(task.runner_command) : null,
    attempt: 0, available_at: now, queue_deadline: deadline, meta: JSON.stringify(task.meta ?? {}),
    cancel_requested: 0, output: '', output_tail: '', result_warnings: '[]',
    min_cpu: needs.min_cpu, min_memory_gb: needs.min_memory_gb, min_storage_gb: needs.min_storage_gb, min_gpu_count: needs.min_gpu_count,
  };
}
