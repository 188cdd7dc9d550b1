/**
 * Project-scoped KV (SPEC §9). Every write is a compare-and-set on the row's version, so concurrent
 * writers on either database serialise: a lost race either retries (plain PUT) or answers 412 (If-Match,
 * If-None-Match). Expired keys read as absent at once and are deleted by the sweeper.
 */
import { sql } from 'kysely';
import { nowIso } from '../core/clock.js';
import { AppError } from '../core/errors.js';
import type { KvEntry, Project, Store } from './port.js';
import { decodeCursor, pageOf, toKv } from './rows.js';
import { isUniqueViolation } from './sql-errors.js';
import { inTx, type StoreContext, type TxContext } from './tx.js';

type KvVerbs = Pick<Store, 'kvGet' | 'kvPut' | 'kvDelete' | 'kvList' | 'kvSweepExpired'>;

class RetryWrite extends Error {}

const KV_COUNT_LOCK = 7_204_312;

const live = (now: string) => (row: { expires_at: string | null }) => row.expires_at === null || row.expires_at > now;

function kvEvent(t: TxContext, project: Project, type: 'kv.updated' | 'kv.deleted', data: Record<string, unknown>) {
  t.emit({ type, accountId: project.account_id, projectId: project.id, data: { project: project.name, ...data } });
}

export function kvVerbs(ctx: StoreContext): KvVerbs {
  const db = ctx.conn.db;
  return {
    async kvGet(projectId, key) {
      const row = await db.selectFrom('kv').selectAll().where('project_id', '=', projectId).where('key', '=', key)
        .executeTakeFirst();
      return row && live(nowIso())(row) ? toKv(row) : null;
    },
    async kvPut(input) {
      for (let attempt = 0; ; attempt += 1) {
        try {
          return await inTx(ctx, (t) => putOnce(t, input));
        } catch (err) {
          const raced = err instanceof RetryWrite || isUniqueViolation(err);
          if (!raced || attempt >= 5) throw err;
          if (input.ifNoneMatch) throw new AppError('kv_key_exists', { key: input.key });
        }
      }
    },
    async kvDelete(project, key) {
      return inTx(ctx, async (t) => {
        const rows = await t.tx.deleteFrom('kv').where('project_id', '=', project.id).where('key', '=', key)
          .returning(['expires_at']).execute();
        const existed = rows.some(live(nowIso()));
        if (existed) kvEvent(t, project, 'kv.deleted', { key });
        // An expired row removed here is gone before the sweeper could announce it: announce it now, so a
        // stream subscriber still learns that the key's last version is gone (the caller still gets 404).
        else if (rows.length > 0) kvEvent(t, project, 'kv.deleted', { key, reason: 'expired' });
        return existed;
      });
    },
    async kvList(projectId, prefix, { limit, cursor }) {
      const after = decodeCursor(cursor);
      let q = db.selectFrom('kv').selectAll().where('project_id', '=', projectId)
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', nowIso())]))
        .orderBy('key').limit(limit + 1);
      // substr counts characters (code points) on both databases, not UTF-16 units like String.length.
      if (prefix) q = q.where((eb) => eb(eb.fn('substr', ['key', eb.lit(1), eb.val([...prefix].length)]), '=', prefix));
      if (after !== null) q = q.where('key', '>', String(after));
      return pageOf((await q.execute()).map(toKv), limit, (e) => e.key);
    },
    async kvSweepExpired() {
      return inTx(ctx, async (t) => {
        const rows = await t.tx.deleteFrom('kv').where('expires_at', '<=', nowIso())
          .returning(['project_id', 'key']).execute();
        if (rows.length === 0) return 0;
        const projects = await t.tx.selectFrom('projects').select(['id', 'account_id', 'name'])
          .where('id', 'in', [...new Set(rows.map((r) => r.project_id))]).execute();
        for (const row of rows) {
          const project = projects.find((p) => p.id === row.project_id);
          if (project) kvEvent(t, project as Project, 'kv.deleted', { key: row.key, reason: 'expired' });
        }
        return rows.length;
      });
    },
  };
}

async function putOnce(t: TxContext, input: Parameters<Store['kvPut']>[0]): Promise<KvEntry> {
  const { project, key } = input;
  const now = nowIso();
  let select = t.tx.selectFrom('kv').selectAll().where('project_id', '=', project.id).where('key', '=', key);
  // PostgreSQL runs writers of one key concurrently: lock the row, so a writer waits for the one before it
  // and then reads its version, instead of failing its compare-and-set once per competing writer (plain
  // PUTs ran out of retries under contention and answered 500). SQLite has one writer at a time.
  if (t.dialect === 'postgres') select = select.forUpdate();
  const row = await select.executeTakeFirst();
  const existing = row && live(now)(row) ? row : null;
  if (input.ifNoneMatch && existing) throw new AppError('kv_key_exists', { key });
  if (input.ifMatch !== null && existing?.version !== input.ifMatch) {
    throw new AppError('kv_version_mismatch', { key, current: existing ? existing.version : 'absent', expected: input.ifMatch });
  }
  const values = {
    value: input.value, size_bytes: Buffer.byteLength(input.value), updated_at: now, expires_at: input.expiresAt,
  };
  let version: number;
  if (existing) {
    version = existing.version + 1;
    const res = await t.tx.updateTable('kv').set({ ...values, version }).where('project_id', '=', project.id)
      .where('key', '=', key).where('version', '=', existing.version).executeTakeFirst();
    if (Number(res.numUpdatedRows) === 0) {
      if (input.ifMatch !== null) throw new AppError('kv_version_mismatch', { key, current: 'changed', expected: input.ifMatch });
      throw new RetryWrite();
    }
  } else {
    if (row) {
      // The row expired but the sweeper has not removed (and announced) it yet: do both here.
      const gone = await t.tx.deleteFrom('kv').where('project_id', '=', project.id).where('key', '=', key)
        .where('version', '=', row.version).executeTakeFirst();
      if (Number(gone.numDeletedRows) > 0) kvEvent(t, project, 'kv.deleted', { key, reason: 'expired' });
    }
    // New keys of one project are counted and inserted one at a time, so concurrent creates cannot pass the
    // key limit together (a two-key advisory lock: its key space does not overlap one-key advisory locks).
    if (t.dialect === 'postgres') await sql`select pg_advisory_xact_lock(${KV_COUNT_LOCK}, hashtext(${project.id}))`.execute(t.tx);
    const count = await t.tx.selectFrom('kv').select((eb) => eb.fn.countAll<number>().as('n'))
      .where('project_id', '=', project.id)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)])).executeTakeFirstOrThrow();
    if (Number(count.n) >= input.maxKeys) throw new AppError('kv_key_limit', { project: project.name, limit: input.maxKeys });
    version = 1;
    await t.tx.insertInto('kv').values({ project_id: project.id, key, version, ...values }).execute();
  }
  kvEvent(t, project, 'kv.updated', { key, version, updated_at: now });
  return { key, value: input.value, version, updated_at: now, expires_at: input.expiresAt };
}
