/**
 * What readiness is computed from (core/readiness.ts decides; this only reads and applies): the live
 * workers, the prepared runtimes of one content hash, and the project's job counts. Also the verbs that
 * change readiness from the API: init requests, invalidate, cancel-queued.
 */
import { nowIso } from '../core/clock.js';
import { newId } from '../core/ids.js';
import { allowedFrom, RUNTIME_TRANSITIONS } from '../core/states.js';
import { cancelJobInTx } from './jobs-control.js';
import type { Store } from './port.js';
import { toRuntime, toWorker } from './rows.js';
import { inTx, type StoreContext } from './tx.js';

type ReadinessVerbs = Pick<Store, 'readinessSnapshot' | 'preparingReason' | 'requestInit' | 'pendingInits' | 'pendingInvalidations' | 'invalidate' | 'cancelQueued'>;

/** The reason `invalidate` leaves on runtimes until their worker has discarded them. */
const INVALIDATED_REASON = 'invalidated';

export function readinessVerbs(ctx: StoreContext): ReadinessVerbs {
  const db = ctx.conn.db;
  return {
    async readinessSnapshot(project, contentHash) {
      const workers = await db.selectFrom('workers').selectAll().where('status', '!=', 'offline')
        .orderBy('node_number').execute();
      const runtimes = contentHash
        ? await db.selectFrom('prepared_runtimes')
          .innerJoin('workers', 'workers.id', 'prepared_runtimes.worker_id')
          .selectAll('prepared_runtimes').select('workers.node_number')
          .where('prepared_runtimes.project_id', '=', project.id)
          .where('prepared_runtimes.content_hash', '=', contentHash)
          .orderBy('workers.node_number').execute()
        : [];
      const counts = await db.selectFrom('jobs').select(['status', (eb) => eb.fn.countAll<number>().as('n')])
        .where('project_id', '=', project.id).where('status', 'in', ['queued', 'running'])
        .groupBy('status').execute();
      const count = (s: string) => Number(counts.find((c) => c.status === s)?.n ?? 0);
      return {
        workers: workers.map(toWorker),
        runtimes: runtimes.map(toRuntime),
        jobs: { queued: count('queued'), running: count('running') },
      };
    },
    async requestInit(project, contentHash, workerIds) {
      if (workerIds.length === 0) return;
      await inTx(ctx, async (t) => {
        const now = nowIso();
        for (const workerId of workerIds) {
          await t.tx.insertInto('prepared_runtimes').values({
            id: newId('rt'), worker_id: workerId, project_id: project.id, content_hash: contentHash, state: 'cold',
            phase: null, status_reason: 'init requested', started_at: null, finished_at: null, duration_ms: null,
            error_code: null, error_message: null, log_tail: '', validation: '[]', init_requested_at: now,
            updated_at: now,
          }).onConflict((oc) => oc.columns(['worker_id', 'project_id', 'content_hash'])
            .doUpdateSet({ init_requested_at: now, updated_at: now })).execute();
        }
        t.emit({
          type: 'project.readiness', accountId: project.account_id, projectId: project.id,
          data: { project: project.name, content_hash: contentHash, reason: 'init_requested', targeted_workers: workerIds.length },
        });
      });
    },
    async pendingInits(workerId) {
      const rows = await db.selectFrom('prepared_runtimes')
        .innerJoin('projects', 'projects.id', 'prepared_runtimes.project_id')
        .innerJoin('revisions', (j) => j.onRef('revisions.project_id', '=', 'prepared_runtimes.project_id')
          .onRef('revisions.content_hash', '=', 'prepared_runtimes.content_hash'))
        .select(['prepared_runtimes.project_id', 'projects.account_id', 'projects.name', 'projects.env',
          'prepared_runtimes.content_hash', 'revisions.id as revision_id'])
        .where('prepared_runtimes.worker_id', '=', workerId).where('prepared_runtimes.state', '=', 'cold')
        .where('prepared_runtimes.init_requested_at', 'is not', null).where('revisions.tarball_deleted_at', 'is', null)
        .execute();
      // One per (project, hash): two projects with identical tarballs still get a runtime each.
      const seen = new Set<string>();
      return rows.filter((r) => {
        const key = `${r.project_id}|${r.content_hash}`;
        return !seen.has(key) && seen.add(key);
      }).map((r) => ({
        project_id: r.project_id, account_id: r.account_id, project: r.name, content_hash: r.content_hash,
        revision_id: r.revision_id, env: JSON.parse(r.env) as Record<string, string>,
      }));
    },
    async preparingReason(projectId, contentHash) {
      const row = await db.selectFrom('prepared_runtimes').select('status_reason')
        .where('project_id', '=', projectId).where('content_hash', '=', contentHash).where('state', '=', 'initializing')
        .orderBy('updated_at', 'desc').limit(1).executeTakeFirst();
      return row?.status_reason ?? null;
    },
    async pendingInvalidations(workerId) {
      const rows = await db.selectFrom('prepared_runtimes')
        .innerJoin('projects', 'projects.id', 'prepared_runtimes.project_id')
        .select(['prepared_runtimes.project_id', 'projects.account_id', 'projects.name', 'projects.env', 'prepared_runtimes.content_hash'])
        .where('prepared_runtimes.worker_id', '=', workerId).where('prepared_runtimes.state', '=', 'stale')
        .where('prepared_runtimes.status_reason', '=', INVALIDATED_REASON)
        .execute();
      return rows.map((r) => ({
        project_id: r.project_id, account_id: r.account_id, project: r.name, content_hash: r.content_hash,
        revision_id: '', env: JSON.parse(r.env) as Record<string, string>,
      }));
    },
    async invalidate(project) {
      return inTx(ctx, async (t) => {
        const now = nowIso();
        await t.tx.updateTable('prepared_runtimes').set({ state: 'stale', status_reason: INVALIDATED_REASON, updated_at: now })
          .where('project_id', '=', project.id).where('state', 'in', allowedFrom(RUNTIME_TRANSITIONS, 'stale')).execute();
        await t.tx.updateTable('projects').set({ invalidated_at: now }).where('id', '=', project.id).execute();
        t.emit({
          type: 'project.readiness', accountId: project.account_id, projectId: project.id,
          data: { project: project.name, reason: 'invalidated', invalidated_at: now },
        });
        return now;
      });
    },
    async cancelQueued(project) {
      return inTx(ctx, async (t) => {
        // Only jobs that have not started; each goes through the job cancel, which keeps tasks_open right
        // and (notStarted) passes over a job that started since this list was read (PostgreSQL).
        const jobs = await t.tx.selectFrom('jobs').select('id').where('project_id', '=', project.id)
          .where('status', '=', 'queued').orderBy('id').execute();
        let cancelledJobs = 0;
        let tasks = 0;
        for (const job of jobs) {
          const { cancelled_tasks } = await cancelJobInTx(t, job.id, 'cancelled by cancel-queued', { notStarted: true });
          if (cancelled_tasks > 0) cancelledJobs += 1;
          tasks += cancelled_tasks;
        }
        return { cancelled_jobs: cancelledJobs, cancelled_tasks: tasks };
      });
    },
  };
}
