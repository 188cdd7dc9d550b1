/**
 * Job submission and the public job, task and results objects (SPEC §6). Submission validates each body
 * on its own (a batch answers per job), plans the tasks in core, and creates every job of a request in one
 * store transaction. Jobs pin the revision active when they are submitted.
 */
import { createHash } from 'node:crypto';
import { aggregateResults, jobProgress, type AggregateTask } from '../core/aggregate.js';
import { AppError, isAppError } from '../core/errors.js';
import { planJob } from '../core/job-plan.js';
import { jobWaitReason, type RunningCap } from '../core/job-reason.js';
import type { AttemptRecord, JobRecord, Project, Revision, TaskCounts, TaskRecord, Worker } from '../core/model.js';
import { isLive } from '../core/readiness.js';
import type { Static } from '@sinclair/typebox';
import { validateSubmit, type JobObject, type ResultsObject, type TaskObject, type ValidSubmit } from '../protocol/jobs.js';
import type { NewJob } from '../store/port.js';
import type { Deps } from './deps.js';
import { projectKey, ProjectLookups } from './project-lookups.js';
import { STALE, SubmitBatcher } from './submit-batcher.js';
import { queuedQuotaRefusals } from './task-quota.js';

export type SubmitAnswer = { id: string; replayed: boolean; created_at: string; job: NewJob; started: number } | { error: AppError };

/** Stable hash of a request body (keys sorted), for idempotency: same key + same body = same job. */
export function requestHash(body: unknown): string {
  const canonical = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canonical);
    if (v && typeof v === 'object') {
      return Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, canonical((v as Record<string, unknown>)[k])]));
    }
    return v;
  };
  return createHash('sha256').update(JSON.stringify(canonical(body))).digest('hex');
}

/**
 * How many times a submit is planned: from kept project reads first, then (when the store found a project
 * changed meanwhile and created nothing) from fresh reads. Another change between a fresh read and the
 * insert, milliseconds later, again and again, means the project is being pushed to without pause.
 */
const PLAN_ATTEMPTS = 5;

type PlannedProject = { project: Project; revision: Revision; kept: boolean };

export async function submitJobs(deps: Deps, accountId: string, bodies: unknown[], headerKey: string | null): Promise<SubmitAnswer[]> {
  const answers: Array<SubmitAnswer | null> = bodies.map(() => null);
  // The bodies still to plan: all of them, then those whose jobs the store found stale (not created).
  let pending = bodies.map((_, i) => i);
  for (let attempt = 1; ; attempt += 1) {
    const jobs: NewJob[] = [];
    const slots: number[] = [];
    const projects = new Map<string, PlannedProject | AppError>();
    for (const i of pending) {
      try {
        jobs.push(await prepareJob(deps, accountId, bodies[i], headerKey, projects, attempt > 1));
        slots.push(i);
      } catch (err) {
        if (!isAppError(err)) throw err;
        answers[i] = { error: err };
      }
    }
    const refused = await queuedQuotaRefusals(deps, accountId, jobs);
    for (let i = jobs.length - 1; i >= 0; i -= 1) {
      const error = refused[i];
      if (!error) continue;
      answers[slots[i]!] = { error };
      jobs.splice(i, 1);
      slots.splice(i, 1);
    }
    const created = jobs.length === 0 ? { outcomes: [], leased: [] } : await batcherOf(deps).submit(jobs);
    for (const failure of created.failures ?? []) deps.log.error({ err: failure }, 'a part of a batch submit was not created');
    const started = new Map<string, number>();
    for (const task of created.leased.flat()) started.set(task.job_id, (started.get(task.job_id) ?? 0) + 1);
    pending = [];
    created.outcomes.forEach((outcome, i) => {
      if (outcome === STALE) pending.push(slots[i]!);
      else answers[slots[i]!] = isAppError(outcome) ? { error: outcome } : {
        id: outcome.job_id, replayed: outcome.replayed, created_at: outcome.created_at, job: jobs[i]!, started: started.get(outcome.job_id) ?? 0,
      };
    });
    if (pending.length === 0) return answers as SubmitAnswer[];
    for (const name of projects.keys()) projectsOf(deps).forget(projectKey(accountId, name));
    if (attempt === PLAN_ATTEMPTS) {
      // The project kept changing under these jobs: each says so (a single submit answers it as its error).
      for (const i of pending) answers[i] = { error: new AppError('push_in_progress', { name: jobs[slots.indexOf(i)]!.project }) };
      return answers as SubmitAnswer[];
    }
  }
}

/** One group-commit batcher per server (submit-batcher.ts). */
const batchers = new WeakMap<Deps, SubmitBatcher>();
function batcherOf(deps: Deps): SubmitBatcher {
  let batcher = batchers.get(deps);
  if (!batcher) {
    // PostgreSQL: a large submit in two parts side by side (two backends, two cores), and at most two group
    // commits at a time (bigger commits, less of PostgreSQL's CPU per job). SQLite has one writer.
    batcher = new SubmitBatcher((jobs) => createWithDirectDispatch(deps, jobs),
      deps.store.dialect === 'postgres' ? { parts: 2, inFlight: 2 } : {});
    batchers.set(deps, batcher);
  }
  return batcher;
}

/**
 * Revisions never change once published (only their tarball may be released, never the active one's), so
 * submits read each one from the store once: the project row is always read fresh, for its active id.
 */
const revisions = new Map<string, Revision>();

async function revisionById(deps: Deps, id: string): Promise<Revision | null> {
  const hit = revisions.get(id);
  if (hit) return hit;
  const revision = await deps.store.getRevision(id);
  if (revision) {
    if (revisions.size >= 1_000) revisions.clear();
    revisions.set(id, revision);
  }
  return revision;
}

/**
 * Creates the jobs; when embedded workers have free slots, they lease in the same transaction and start
 * the tasks at once (no second transaction, no wake-up on the dispatch path). The promised slots are given
 * back whatever happens.
 */
async function createWithDirectDispatch(deps: Deps, jobs: NewJob[]) {
  if (jobs.length === 0) return { outcomes: [], leased: [] };
  const profile = jobs[0]!.profile;
  const tasks = jobs.filter((j) => j.profile === profile).reduce((n, j) => n + j.tasks.length, 0);
  const slots = deps.reserveSlots(profile, tasks);
  let leased: import('../core/model.js').LeasedTask[][] = [];
  try {
    const created = await deps.store.createJobs(jobs, slots?.requests ?? []);
    leased = created.leased;
    return created;
  } finally {
    slots?.accept(leased);
  }
}

/** One project lookup per server (project-lookups.ts). */
const lookups = new WeakMap<Deps, ProjectLookups>();
function projectsOf(deps: Deps): ProjectLookups {
  let found = lookups.get(deps);
  if (!found) lookups.set(deps, found = new ProjectLookups(deps.store));
  return found;
}

/**
 * The project and its active revision for a submit. `fresh`: not from a kept read (a job with an
 * idempotency key, kept to fresh reads as before, or a second plan after a stale one).
 */
async function projectFor(deps: Deps, accountId: string, name: string, cache: Map<string, PlannedProject | AppError>, fresh: boolean) {
  let entry = cache.get(name);
  if (!entry || (fresh && !(entry instanceof AppError) && entry.kept)) {
    // Kept on both stores (project-lookups.ts); on PostgreSQL a read is batched with the other submits of
    // this turn, on SQLite it goes at once.
    const key = projectKey(accountId, name);
    const { project, kept } = deps.store.dialect === 'postgres'
      ? await projectsOf(deps).load(key, fresh)
      : await projectsOf(deps).loadNow(key, fresh, () => deps.store.getProject(accountId, name));
    const revision = project?.active_revision_id ? await revisionById(deps, project.active_revision_id) : null;
    entry = !project ? new AppError('project_not_found', { name })
      : !revision ? new AppError('project_not_pushed', { name })
      : { project, revision, kept };
    cache.set(name, entry);
  }
  if (entry instanceof AppError) throw entry;
  return entry;
}

async function prepareJob(deps: Deps, accountId: string, body: unknown, headerKey: string | null, cache: Map<string, PlannedProject | AppError>, fresh: boolean): Promise<NewJob> {
  const checked = validateSubmit(body);
  if (!checked.ok) {
    const first = checked.problems[0];
    throw new AppError('validation_failed', { summary: first ? `${first.path || '(body)'} ${first.message}` : 'invalid job' }, { problems: checked.problems });
  }
  const spec: ValidSubmit = checked.value;
  const key = spec.idempotency_key ?? headerKey;
  const { project, revision, kept } = await projectFor(deps, accountId, spec.project, cache, fresh || key !== null);
  const manifest = revision.manifest as { entrypoint?: { command?: string[] } | null };
  const plan = planJob(spec, { entrypoint: manifest.entrypoint?.command ?? null });
  return {
    account_id: accountId, project_id: project.id, project: project.name, revision_id: revision.id,
    content_hash: revision.content_hash, type: plan.type, priority: spec.priority, timeout_s: spec.timeout_s,
    queue_timeout_s: spec.queue_timeout_s ?? null, max_attempts: spec.retries.max_attempts, backoff_s: spec.retries.backoff_s,
    checkpoint: spec.checkpoint?.enabled === true, runner_command: plan.runnerCommand,
    env: { ...project.env, ...(spec.env ?? {}) }, meta: spec.meta ?? null, variant: spec.variant ?? null,
    profile: spec.profile, requirements: spec.requirements ?? {}, reduce: plan.reduce, objective: plan.objective,
    spec: spec as unknown as Record<string, unknown>,
    idempotency: key ? { key, request_hash: requestHash(body) } : null,
    tasks_total: plan.tasksTotal,
    // Planned from a kept read: the store's insert checks the project still is as it was then.
    ...(kept ? { project_env: project.env } : {}),
    tasks: plan.tasks.map((t) => ({
      index: t.index, kind: t.kind, payload: t.payload, item: t.item, runner_command: t.runner_command,
      meta: { ...(t.strategy !== undefined ? { strategy: t.strategy } : {}), ...(t.repeat !== undefined ? { repeat: t.repeat } : {}), ...(t.params !== undefined ? { params: t.params } : {}) },
    })),
  };
}

const FINISHED = new Set(['completed', 'partial', 'failed', 'cancelled']);

/** The public job; `live` (the live workers) makes an unfinished job's status_reason say why it waits. */
export function jobObject(job: JobRecord & { counts: TaskCounts }, live: Worker[] | null = null, cap: RunningCap | null = null): Static<typeof JobObject> {
  const reason = FINISHED.has(job.status) || live === null
    ? job.status_reason
    : jobWaitReason({ profile: job.profile, stored: job.status_reason, requirements: job.requirements }, job.counts, live, cap);
  return <Static<typeof JobObject>>{
    id: job.id, type: job.type, project: job.project, content_hash: job.content_hash, status: job.status,
    status_reason: reason, error: job.error, recommended_action: job.recommended_action,
    created_at: job.created_at, started_at: job.started_at, finished_at: job.finished_at, timeout_s: job.timeout_s,
    tasks_total: job.tasks_total, tasks: job.counts, progress: jobProgress(job.counts, job.tasks_total),
    meta: job.meta, variant: job.variant, runner_command: job.runner_command, profile: job.profile, priority: job.priority,
  };
}

export async function liveWorkers(deps: Pick<Deps, 'store'>): Promise<Worker[]> {
  const now = Date.now();
  return (await deps.store.listWorkers()).filter((w) => isLive(w, now));
}

/** The answer to a fresh submit, from what was just stored: no second read on the dispatch path. */
export function newJobObject(id: string, createdAt: string, job: NewJob, started = 0): Static<typeof JobObject> {
  const counts = { queued: job.tasks.length - started, preparing: started, running: 0, completed: 0, failed: 0, cancelled: 0 };
  return <Static<typeof JobObject>>{
    id, type: job.type, project: job.project, content_hash: job.content_hash, status: started > 0 ? 'running' : 'queued',
    status_reason: started > 0 ? `preparing ${started} task(s)` : 'waiting for a worker', error: null, recommended_action: null,
    created_at: createdAt, started_at: started > 0 ? createdAt : null, finished_at: null, timeout_s: job.timeout_s, tasks_total: job.tasks_total, tasks: counts,
    progress: 0, meta: job.meta, variant: job.variant, runner_command: job.runner_command, profile: job.profile,
    priority: job.priority,
  };
}

export function taskObject(task: TaskRecord & { attempts: AttemptRecord[] }): Static<typeof TaskObject> {
  return <Static<typeof TaskObject>>{
    id: task.id, index: task.index, status: task.status, status_reason: task.status_reason, attempt: task.attempt,
    attempts: task.attempts, exit_code: task.exit_code, error: task.error, output: task.output,
    latest_progress: task.latest_progress, live_feedback: { output_tail: task.output_tail }, item: task.item,
    result: task.result, result_quality: task.result_quality, result_warnings: task.result_warnings,
    started_at: task.started_at, finished_at: task.finished_at, duration_ms: task.duration_ms,
    cold_start: task.cold_start, node: task.node, kind: task.kind as 'task' | 'map' | 'reduce',
  };
}

export function resultsObject(job: JobRecord & { counts: TaskCounts }, rows: TaskRecord[]): Static<typeof ResultsObject> {
  const tasks: AggregateTask[] = rows.map((t) => ({
    index: t.index, item: t.item, status: t.status, result: t.result, result_quality: t.result_quality,
    result_warnings: t.result_warnings, error: t.error, kind: t.kind, duration_ms: t.duration_ms,
    ...(t.meta as { strategy?: string; repeat?: number; params?: Record<string, unknown> }),
  }));
  const c = job.counts;
  const total = Math.max(job.tasks_total, rows.length);
  const duration = job.started_at && job.finished_at ? (Date.parse(job.finished_at) - Date.parse(job.started_at)) / 1000 : null;
  return <Static<typeof ResultsObject>>{
    job_id: job.id, status: job.status, completeness: total === 0 ? 1 : c.completed / total,
    summary: { tasks_total: job.tasks_total, completed: c.completed, failed: c.failed, cancelled: c.cancelled, duration_s: duration },
    aggregate_result: aggregateResults(job.type as never, tasks, { ...job.spec, objective: job.objective } as never),
    results: rows.map((t) => ({ index: t.index, item: t.item, status: t.status, result: t.result, result_quality: t.result_quality, result_warnings: t.result_warnings, error: t.error })),
    meta: job.meta, variant: job.variant, result_persisted: true, output_persisted: true,
  };
}
