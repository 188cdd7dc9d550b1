/**
 * Publishing revisions. A push is published at once: the revision row, the project's active pointer and
 * the `project.pushed` event commit together. Identical content (same content_hash as the active
 * revision) publishes nothing. Old tarballs are released once a revision is neither among the newest
 * `keepNewest` nor pinned by an unfinished job (SPEC §3.1); the caller deletes the returned blobs.
 */
import { nowIso } from '../core/clock.js';
import type { FileEntry } from '../core/content-hash.js';
import { newId } from '../core/ids.js';
import { JOB_ACTIVE_STATES } from '../core/states.js';
import type { Store } from './port.js';
import { decodeCursor, pageOf, toRevision } from './rows.js';
import { inTx, type StoreContext, type Tx } from './tx.js';

type RevisionVerbs = Pick<Store, 'publishRevision' | 'getRevision' | 'listRevisions'>;

const revisionColumns = [
  'id', 'project_id', 'revision', 'content_hash', 'tarball_sha256', 'size_bytes', 'file_count', 'manifest',
  'manifest_warnings', 'published_at', 'tarball_deleted_at',
] as const;

export function revisionVerbs(ctx: StoreContext): RevisionVerbs {
  const db = ctx.conn.db;
  return {
    async publishRevision(project, input, keepNewest) {
      return inTx(ctx, async (t) => {
        const { tx } = t;
        const current = await tx.selectFrom('projects').select('active_revision_id')
          .where('id', '=', project.id).executeTakeFirst();
        const activeId = current?.active_revision_id ?? null;
        const active = activeId
          ? await tx.selectFrom('revisions').selectAll().where('id', '=', activeId).executeTakeFirst()
          : undefined;
        if (active && active.content_hash === input.content_hash) {
          return { unchanged: true as const, revision: toRevision(active), releasedTarballs: [] };
        }
        const top = await tx.selectFrom('revisions').select((eb) => eb.fn.max<number>('revision').as('n'))
          .where('project_id', '=', project.id).executeTakeFirst();
        const now = nowIso();
        const row = {
          id: newId('rev'), project_id: project.id, revision: Number(top?.n ?? 0) + 1,
          content_hash: input.content_hash, tarball_sha256: input.tarball_sha256, size_bytes: input.size_bytes,
          file_count: input.files.length, manifest: JSON.stringify(input.manifest),
          manifest_warnings: JSON.stringify(input.manifest_warnings), files: JSON.stringify(input.files),
          published_at: now, tarball_deleted_at: null,
        };
        await tx.insertInto('revisions').values(row).execute();
        await tx.updateTable('projects').set({ active_revision_id: row.id, updated_at: now })
          .where('id', '=', project.id).execute();
        const data = { project: project.name, content_hash: row.content_hash, revision: row.revision };
        t.emit({ type: 'project.pushed', accountId: project.account_id, projectId: project.id, data });
        t.emit({
          type: 'project.readiness', accountId: project.account_id, projectId: project.id,
          data: { ...data, ready_for_jobs: false, reason: 'published' },
        });
        const releasedTarballs = await releaseOldTarballs(t.tx, project.id, keepNewest);
        const previous = active
          ? { revision: toRevision(active), files: JSON.parse(active.files) as FileEntry[] }
          : null;
        return { unchanged: false as const, revision: toRevision(row), previous, releasedTarballs };
      });
    },
    async getRevision(id) {
      const row = await db.selectFrom('revisions').select(revisionColumns).where('id', '=', id).executeTakeFirst();
      return row ? toRevision(row) : null;
    },
    async listRevisions(projectId, { limit, cursor }) {
      const after = decodeCursor(cursor);
      let q = db.selectFrom('revisions').select(revisionColumns).where('project_id', '=', projectId)
        .orderBy('revision', 'desc').limit(limit + 1);
      if (after !== null) q = q.where('revision', '<', Number(after));
      return pageOf((await q.execute()).map(toRevision), limit, (r) => r.revision);
    },
  };
}

async function releaseOldTarballs(tx: Tx, projectId: string, keepNewest: number): Promise<string[]> {
  const old = await tx.selectFrom('revisions').select(['id', 'tarball_sha256'])
    .where('project_id', '=', projectId).where('tarball_deleted_at', 'is', null)
    .orderBy('revision', 'desc').offset(keepNewest).limit(1_000_000).execute();
  if (old.length === 0) return [];
  const pinned = await tx.selectFrom('jobs').select('revision_id').distinct()
    .where('project_id', '=', projectId).where('status', 'in', [...JOB_ACTIVE_STATES]).execute();
  const pinnedIds = new Set(pinned.map((p) => p.revision_id));
  const release = old.filter((r) => !pinnedIds.has(r.id));
  if (release.length === 0) return [];
  await tx.updateTable('revisions').set({ tarball_deleted_at: nowIso() })
    .where('id', 'in', release.map((r) => r.id)).execute();
  const shas = [...new Set(release.map((r) => r.tarball_sha256))];
  const stillUsed = await tx.selectFrom('revisions').select('tarball_sha256')
    .where('tarball_sha256', 'in', shas).where('tarball_deleted_at', 'is', null).execute();
  const used = new Set(stillUsed.map((r) => r.tarball_sha256));
  return shas.filter((sha) => !used.has(sha));
}
