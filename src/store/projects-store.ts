/**
 * Projects and the push lock. Delete refuses while jobs are queued or running, checked inside the
 * deleting transaction so a job submitted concurrently cannot slip past the check.
 */
import { addSeconds, nowIso } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import { newId } from '../core/ids.js';
import { JOB_ACTIVE_STATES } from '../core/states.js';
import type { Store } from './port.js';
import { decodeCursor, pageOf, toProject } from './rows.js';
import { isUniqueViolation } from './sql-errors.js';
import { inTx, type StoreContext } from './tx.js';

type ProjectVerbs = Pick<Store,
  'createProject' | 'getProject' | 'getProjects' | 'listProjects' | 'updateProject' | 'deleteProject' | 'tryLockPush'
  | 'renewPushLock' | 'releasePushLock'>;

export function projectVerbs(ctx: StoreContext): ProjectVerbs {
  const db = ctx.conn.db;
  return {
    async createProject(accountId, input) {
      const now = nowIso();
      const row = {
        id: newId('prj'), account_id: accountId, name: input.name, remote_dir: input.remote_dir,
        description: input.description, env: JSON.stringify(input.env), created_at: now, updated_at: now,
        active_revision_id: null, invalidated_at: null,
      };
      try {
        await db.insertInto('projects').values(row).execute();
      } catch (err) {
        if (isUniqueViolation(err)) throw new AppError('project_exists', { name: input.name });
        throw err;
      }
      return toProject(row);
    },
    async getProject(accountId, name) {
      const row = await db.selectFrom('projects').selectAll()
        .where('account_id', '=', accountId).where('name', '=', name).executeTakeFirst();
      return row ? toProject(row) : null;
    },
    async getProjects(accountId, names) {
      if (names.length === 0) return [];
      const rows = await db.selectFrom('projects').selectAll()
        .where('account_id', '=', accountId).where('name', 'in', [...new Set(names)]).execute();
      return rows.map(toProject);
    },
    async listProjects(accountId, { limit, cursor }) {
      const after = decodeCursor(cursor);
      let q = db.selectFrom('projects').selectAll().where('account_id', '=', accountId).orderBy('name').limit(limit + 1);
      if (after !== null) q = q.where('name', '>', String(after));
      return pageOf((await q.execute()).map(toProject), limit, (p) => p.name);
    },
    async updateProject(project, patch) {
      const set: Record<string, string | null> = { updated_at: nowIso() };
      if (patch.remote_dir !== undefined) set.remote_dir = patch.remote_dir;
      if (patch.description !== undefined) set.description = patch.description;
      if (patch.env !== undefined) set.env = JSON.stringify(patch.env);
      await db.updateTable('projects').set(set).where('id', '=', project.id).execute();
      const row = await db.selectFrom('projects').selectAll().where('id', '=', project.id).executeTakeFirstOrThrow();
      return toProject(row);
    },
    async deleteProject(project) {
      return inTx(ctx, async ({ tx }) => {
        const active = await tx.selectFrom('jobs').select((eb) => eb.fn.countAll<number>().as('n'))
          .where('project_id', '=', project.id).where('status', 'in', [...JOB_ACTIVE_STATES])
          .executeTakeFirstOrThrow();
        if (Number(active.n) > 0) {
          throw new AppError('project_has_active_jobs', { name: project.name, count: Number(active.n) });
        }
        const revisions = await tx.selectFrom('revisions').select('tarball_sha256')
          .where('project_id', '=', project.id).where('tarball_deleted_at', 'is', null).execute();
        // Attempts and idempotency keys have no project column: through their jobs, before the jobs go. A
        // key left behind would replay a job that no longer exists to a project made again under the name.
        const jobs = tx.selectFrom('jobs').select('id').where('project_id', '=', project.id);
        await tx.deleteFrom('attempts').where('job_id', 'in', jobs).execute();
        await tx.deleteFrom('idempotency_keys').where('account_id', '=', project.account_id).where('job_id', 'in', jobs).execute();
        for (const table of ['revisions', 'kv', 'prepared_runtimes', 'push_locks', 'tasks', 'jobs'] as const) {
          await tx.deleteFrom(table).where('project_id', '=', project.id).execute();
        }
        await tx.deleteFrom('projects').where('id', '=', project.id).execute();
        const candidates = [...new Set(revisions.map((r) => r.tarball_sha256))];
        if (candidates.length === 0) return { tarballs: [] };
        // A tarball may be shared by another project's revision (same bytes pushed twice): keep those.
        const stillUsed = await tx.selectFrom('revisions').select('tarball_sha256')
          .where('tarball_sha256', 'in', candidates).where('tarball_deleted_at', 'is', null).execute();
        const used = new Set(stillUsed.map((r) => r.tarball_sha256));
        return { tarballs: candidates.filter((sha) => !used.has(sha)) };
      });
    },
    async tryLockPush(projectId, holder, ttlSeconds) {
      const now = nowIso();
      const expires = addSeconds(now, ttlSeconds);
      // Take the lock if free or expired (a crashed pusher); the WHERE makes it a compare-and-set.
      const res = await db.insertInto('push_locks').values({ project_id: projectId, holder, expires_at: expires })
        .onConflict((oc) => oc.column('project_id').doUpdateSet({ holder, expires_at: expires })
          .where('push_locks.expires_at', '<', now))
        .executeTakeFirst();
      return Number(res.numInsertedOrUpdatedRows ?? 0) > 0;
    },
    async renewPushLock(projectId, holder, ttlSeconds) {
      await db.updateTable('push_locks').set({ expires_at: addSeconds(nowIso(), ttlSeconds) })
        .where('project_id', '=', projectId).where('holder', '=', holder).execute();
    },
    async releasePushLock(projectId, holder) {
      await db.deleteFrom('push_locks').where('project_id', '=', projectId).where('holder', '=', holder).execute();
    },
  };
}
