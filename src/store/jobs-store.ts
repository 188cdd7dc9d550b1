/** The job and worker verbs of the Store port, each one transaction (see the jobs-* modules for the rules). */
import { sql } from 'kysely';
import { addSeconds } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import type { LeasedTask } from '../core/model.js';
import { leaseInTx, markStartedInTx } from './jobs-lease.js';
import { endAttemptsInTx, expireLeasesInTx } from './jobs-complete.js';
import { cancelJobInTx, expireQueuedInTx, heartbeatInTx, liveUpdateInTx } from './jobs-control.js';
import { createJobsInTx, insertStatement, newJobRows, projectGuards, StaleProjects, type CreateOutcome, type NewJob } from './jobs-create.js';
import { jobReads } from './jobs-read.js';
import type { CreatedJobs, EndResult, Store, WorkerReports } from './port.js';
import { inStatement, inTx, TxContext, type StoreContext } from './tx.js';
import { WORK_CHANNEL } from './event-feed.js';
import type { LeaseRequest } from './jobs-lease-common.js';
import { LOCK_CAPS, leaseStatement } from './jobs-lease-postgres.js';
import { pipeline } from './pg-pipeline.js';
import { markSilentWorkersOfflineInTx, registerWorker, setRuntimeStateInTx, setWorkerStatusInTx } from './workers-store.js';

type JobVerbs = Pick<Store,
  | 'createJobs' | 'getJob' | 'listJobs' | 'listTasks' | 'resultRows' | 'queuedTaskCount' | 'leasedTaskCount' | 'cancelJob' | 'registerWorker'
  | 'setWorkerStatus' | 'leaseTasks' | 'heartbeat' | 'applyWorkerReports' | 'reportAndLease' | 'setRuntimeState' | 'sweep'>;

export function jobVerbs(ctx: StoreContext): JobVerbs {
  return {
    ...jobReads(ctx),
    // Direct dispatch: the workers that reserved slots lease in the creating transaction itself, in queue
    // order (so older or higher-priority tasks still go first), saving a transaction and a wake-up.
    // While the queue is shared between accounts or projects (Connection.leaseHints), direct leases go in
    // the fair order, which the pipelined statements do not take (jobs-lease-postgres.ts).
    createJobs: (jobs, direct = []) => ctx.conn.dialect === 'postgres' && jobs.length > 0 && insertIsOneStatement(jobs)
      && !(direct.length > 0 && ctx.conn.leaseHints.shared)
      ? createAndLeasePipelined(ctx, jobs, direct)
      : createAndLeaseInTx(ctx, jobs, direct),
    cancelJob: (jobId, reason) => inTx(ctx, (t) => cancelJobInTx(t, jobId, reason)),
    registerWorker: (info) => registerWorker(ctx, info),
    setWorkerStatus: (workerId, status) => inTx(ctx, (t) => setWorkerStatusInTx(t, workerId, status)),
    // PostgreSQL: the lease is one statement with its events (jobs-lease-postgres.ts), no BEGIN/COMMIT.
    leaseTasks: (req) => ctx.conn.dialect === 'postgres' ? inStatement(ctx, (t) => leaseInTx(t, req)) : inTx(ctx, (t) => leaseInTx(t, req)),
    heartbeat: (workerId, held) => inTx(ctx, (t) => heartbeatInTx(t, workerId, held)),
    applyWorkerReports: (reports) => inTx(ctx, (t) => applyReportsInTx(t, reports)),
    // The slots that ended attempts freed are leased again in the reports' own transaction: one
    // transaction per finished task instead of two, on the fan-out hot path.
    reportAndLease: (reports, lease) => inTx(ctx, async (t) => ({
      ended: await applyReportsInTx(t, reports),
      leased: await leaseInTx(t, lease),
    })),
    setRuntimeState: (update, node) => inTx(ctx, (t) => setRuntimeStateInTx(t, update, node)),
    sweep: (now) => inTx(ctx, async (t) => ({
      expired: await expireLeasesInTx(t, now),
      queue_timeouts: await expireQueuedInTx(t, now),
      offline: await markSilentWorkersOfflineInTx(t, addSeconds(now, -t.leaseSeconds)),
    })),
  };
}

/**
 * The insert and the direct leases in one transaction (SQLite, where that costs no round trips; jobs with
 * idempotency keys). A project changed since jobs were planned from it (NewJob.project_env) rolls it
 * all back: `stale`.
 */
async function createAndLeaseInTx(ctx: StoreContext, jobs: NewJob[], direct: LeaseRequest[]): Promise<CreatedJobs> {
  return inTx(ctx, async (t): Promise<CreatedJobs> => {
    // No direct lease: the work NOTIFY can go with the insert (one statement less on PostgreSQL).
    const outcomes = await createJobsInTx(t, jobs, direct.length === 0);
    const leased = [];
    for (const req of direct) leased.push(await leaseInTx(t, req));
    // Every new task already has its worker: waking all workers (in every process, on PostgreSQL by
    // NOTIFY) would only make each run an empty lease, right on the dispatch path.
    if (allLeased(jobs, outcomes, leased.flat())) t.workAdded = false;
    return { outcomes, leased };
  }).catch((error: unknown) => {
    if (error instanceof StaleProjects) return { outcomes: [], leased: direct.map(() => []), stale: true };
    throw error;
  });
}

/** PostgreSQL: jobs without idempotency keys, each with tasks, are inserted by one statement (jobs-create.ts). */
function insertIsOneStatement(jobs: NewJob[]): boolean {
  return jobs.every((job) => job.idempotency === null && job.tasks.length > 0);
}

/**
 * PostgreSQL: the insert and each direct lease pipelined (pg-pipeline.ts), one round trip and one
 * transaction, where BEGIN, insert, lease, COMMIT took four. Without direct leases the insert alone,
 * which sends the work NOTIFY itself. When a project changed since the jobs were planned from it
 * (NewJob.project_env), nothing is inserted and the answer is `stale`: the caller plans them again.
 */
async function createAndLeasePipelined(ctx: StoreContext, jobs: NewJob[], direct: LeaseRequest[]) {
  const t = new TxContext(ctx.conn.db, ctx.conn.dialect, ctx.leaseSeconds, ctx.conn.columnTypes, null, ctx.conn.leaseHints);
  const { rows, outcomes } = newJobRows(jobs);
  // One lease per request, in order (the caller hands each request's tasks to the worker that made it).
  const leases = direct.map((req) => leaseStatement(t, req, Math.max(0, req.prefetch ?? 0)));
  // While accounts have running_tasks caps, the leases count after locking them (LOCK_CAPS).
  const lock = leases.length > 0 && ctx.conn.leaseHints.caps ? [LOCK_CAPS] : [];
  const [inserted, ...rest] = await pipeline(ctx.conn.pool!, ctx.conn.db, [
    insertStatement(ctx.conn.db, ctx.conn.columnTypes!, rows, leases.length === 0, projectGuards(jobs)),
    ...lock,
    ...leases.map((lease) => lease.query),
  ]);
  const leaseRows = rest.slice(lock.length);
  const top = inserted![0] as { id: number | null; ok: boolean };
  t.lastEventId = Number(top.id ?? 0);
  // The leases ran either way: what they took (older queued tasks, if any) is theirs to run.
  const leased = leases.map((lease, i) => lease.read(leaseRows[i]!));
  if (t.lastEventId > 0) ctx.feed.wake(t.lastEventId);
  if (!top.ok) return { outcomes: [], leased, stale: true as const };
  if (leases.length === 0) ctx.feed.signalWork();
  // Every new task already has its worker: waking all workers (in every process, by NOTIFY) would only
  // make each run an empty lease, right on the dispatch path. Otherwise the wake-up waits a turn: the
  // caller first hands the direct leases to their workers, so a task leased by the wake-up cannot take
  // the slot a direct one was promised (seen: the held task ran first, the direct one was handed back).
  else if (!allLeased(jobs, outcomes, leased.flat())) setImmediate(() => void wakeWorkers(ctx));
  return { outcomes, leased };
}

/**
 * Tells idle workers that tasks are queued: this process's at once, the others' by NOTIFY. A failed
 * NOTIFY loses nothing (the jobs are stored; workers also poll), so it does not fail the submit.
 */
async function wakeWorkers(ctx: StoreContext): Promise<void> {
  ctx.feed.signalWork();
  await sql`select pg_notify(${WORK_CHANNEL}, '')`.execute(ctx.conn.db).catch(() => undefined);
}

async function applyReportsInTx(t: TxContext, reports: WorkerReports): Promise<EndResult[]> {
  await markStartedInTx(t, reports.started);
  await liveUpdateInTx(t, reports.live);
  return endAttemptsInTx(t, reports.ended);
}

/** Whether the jobs this submit created (not replays, not refusals) had every one of their tasks leased. */
function allLeased(jobs: NewJob[], outcomes: Array<CreateOutcome | AppError>, leased: LeasedTask[]): boolean {
  const created = new Set<string>();
  let tasks = 0;
  outcomes.forEach((outcome, i) => {
    if (outcome instanceof AppError || outcome.replayed) return;
    created.add(outcome.job_id);
    tasks += jobs[i]!.tasks.length;
  });
  return tasks > 0 && leased.filter((task) => created.has(task.job_id)).length === tasks;
}
