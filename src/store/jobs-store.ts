/** The job and worker verbs of the Store port, each one transaction (see the jobs-* modules for the rules). */
import { addSeconds } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import type { LeasedTask } from '../core/model.js';
import { leaseInTx, markStartedInTx } from './jobs-lease.js';
import { endAttemptsInTx, expireLeasesInTx } from './jobs-complete.js';
import { cancelJobInTx, expireQueuedInTx, heartbeatInTx, liveUpdateInTx } from './jobs-control.js';
import { createJobsInTx, type CreateOutcome, type NewJob } from './jobs-create.js';
import { jobReads } from './jobs-read.js';
import type { EndResult, Store, WorkerReports } from './port.js';
import { inTx, type StoreContext, type TxContext } from './tx.js';
import { markSilentWorkersOfflineInTx, registerWorker, setRuntimeStateInTx, setWorkerStatusInTx } from './workers-store.js';

type JobVerbs = Pick<Store,
  | 'createJobs' | 'getJob' | 'listJobs' | 'listTasks' | 'resultRows' | 'cancelJob' | 'registerWorker'
  | 'setWorkerStatus' | 'leaseTasks' | 'heartbeat' | 'applyWorkerReports' | 'reportAndLease' | 'setRuntimeState' | 'sweep'>;

export function jobVerbs(ctx: StoreContext): JobVerbs {
  return {
    ...jobReads(ctx),
    // Direct dispatch: the workers that reserved slots lease in the creating transaction itself, in queue
    // order (so older or higher-priority tasks still go first), saving a transaction and a wake-up.
    createJobs: (jobs, direct = []) => inTx(ctx, async (t) => {
      // No direct lease: the work NOTIFY can go with the insert (one statement less on PostgreSQL).
      const outcomes = await createJobsInTx(t, jobs, direct.length === 0);
      const leased = [];
      for (const req of direct) leased.push(await leaseInTx(t, req));
      // Every new task already has its worker: waking all workers (in every process, on PostgreSQL by
      // NOTIFY) would only make each run an empty lease, right on the dispatch path.
      if (allLeased(jobs, outcomes, leased.flat())) t.workAdded = false;
      return { outcomes, leased };
    }),
    cancelJob: (jobId, reason) => inTx(ctx, (t) => cancelJobInTx(t, jobId, reason)),
    registerWorker: (info) => registerWorker(ctx, info),
    setWorkerStatus: (workerId, status) => inTx(ctx, (t) => setWorkerStatusInTx(t, workerId, status)),
    leaseTasks: (req) => inTx(ctx, (t) => leaseInTx(t, req)),
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
