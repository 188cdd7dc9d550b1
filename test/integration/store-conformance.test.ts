/**
 * The Store port's conformance suite. The test runner runs it once per database (scripts/test.sh), so
 * SQLite and PostgreSQL are held to the same contract.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppError } from '../../src/core/errors.js';
import type { Project, Store } from '../../src/store/port.js';
import { openStore } from '../../src/store/sql-store.js';
import { storeKind, testDatabase, type TestDatabase } from '../helpers/db.js';

const noQuotas = { projects: null, stored_bytes: null, running_tasks: null, queued_tasks: null };
const file = (path: string, sha: string) => ({ path, kind: 'file' as const, size: 1, sha256: sha, executable: false });

describe(`store conformance (${storeKind()})`, () => {
  let store: Store;
  let db: TestDatabase;
  let dir: string;
  let accountId: string;
  let project: Project;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'computalot-store-'));
    db = await testDatabase();
    store = await openStore({ databaseUrl: db.url, sqlitePath: join(dir, 'db.sqlite') });
    accountId = (await store.createAccount({ name: 'acme', quotas: noQuotas })).id;
    project = await store.createProject(accountId, { name: 'p1', remote_dir: null, description: null, env: {} });
  });
  after(async () => {
    await store.close();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('reports its dialect', () => assert.equal(store.dialect, storeKind()));

  it('refuses a second account or project with the same name', async () => {
    await assert.rejects(store.createAccount({ name: 'acme', quotas: noQuotas }), (e: AppError) => e.code === 'account_exists');
    await assert.rejects(store.createProject(accountId, { name: 'p1', remote_dir: null, description: null, env: {} }),
      (e: AppError) => e.code === 'project_exists');
    const other = await store.createAccount({ name: 'other', quotas: noQuotas });
    const same = await store.createProject(other.id, { name: 'p1', remote_dir: null, description: null, env: {} });
    assert.equal(same.name, 'p1');
    assert.equal(await store.getProject(other.id, 'missing'), null);
  });

  it('finds keys by hash only while they are not revoked', async () => {
    const key = await store.createApiKey({ accountId, role: 'viewer', name: 'v', keyHash: 'h1', keyPrefix: 'flk_abcd' });
    assert.equal((await store.findApiKeyByHash('h1'))?.id, key.id);
    assert.equal(await store.revokeApiKey(key.id), true);
    assert.equal(await store.findApiKeyByHash('h1'), null);
    assert.equal(await store.revokeApiKey(key.id), false);
  });

  it('publishes revisions, numbers them, and publishes nothing for the same content', async () => {
    const rev = (hash: string, sha: string) => ({
      content_hash: hash, tarball_sha256: sha, size_bytes: 10, files: [file('a', sha)], manifest: {}, manifest_warnings: [],
    });
    const first = await store.publishRevision(project, rev('sha256:aa', 'a'.repeat(64)), 10);
    assert.equal(first.unchanged, false);
    assert.equal(first.revision.revision, 1);
    project = (await store.getProject(accountId, 'p1'))!;
    const again = await store.publishRevision(project, rev('sha256:aa', 'b'.repeat(64)), 10);
    assert.equal(again.unchanged, true);
    const second = await store.publishRevision(project, rev('sha256:bb', 'c'.repeat(64)), 10);
    assert.equal(second.revision.revision, 2);
    assert.ok(!second.unchanged && second.previous?.revision.revision === 1);
    const page = await store.listRevisions(project.id, { limit: 1, cursor: null });
    assert.deepEqual(page.items.map((r) => r.revision), [2]);
    const next = await store.listRevisions(project.id, { limit: 1, cursor: page.next_cursor });
    assert.deepEqual(next.items.map((r) => r.revision), [1]);
    assert.equal(next.next_cursor, null);
  });

  it('releases tarballs beyond the newest N', async () => {
    const p = await store.createProject(accountId, { name: 'retention', remote_dir: null, description: null, env: {} });
    const released: string[] = [];
    for (let i = 0; i < 4; i += 1) {
      const sha = String(i).repeat(64);
      const out = await store.publishRevision(p, { content_hash: `sha256:${i}`, tarball_sha256: sha, size_bytes: 1, files: [], manifest: {}, manifest_warnings: [] }, 2);
      released.push(...out.releasedTarballs);
    }
    assert.deepEqual(released, ['0'.repeat(64), '1'.repeat(64)]);
  });

  it('gives the push lock to one holder at a time', async () => {
    assert.equal(await store.tryLockPush(project.id, 'a', 60), true);
    assert.equal(await store.tryLockPush(project.id, 'b', 60), false);
    await store.releasePushLock(project.id, 'b');
    assert.equal(await store.tryLockPush(project.id, 'b', 60), false);
    await store.releasePushLock(project.id, 'a');
    assert.equal(await store.tryLockPush(project.id, 'b', 60), true);
    await store.releasePushLock(project.id, 'b');
  });

  it('takes over an expired push lock', async () => {
    assert.equal(await store.tryLockPush(project.id, 'dead', -1), true);
    assert.equal(await store.tryLockPush(project.id, 'live', 60), true);
    await store.releasePushLock(project.id, 'live');
  });

  it('does KV compare-and-set, create-only, TTL and listing', async () => {
    const put = (key: string, value: unknown, extra: Partial<Parameters<Store['kvPut']>[0]> = {}) =>
      store.kvPut({ project, key, value: JSON.stringify(value), ifMatch: null, ifNoneMatch: false, expiresAt: null, maxKeys: 3, ...extra });
    assert.equal((await put('a', 1)).version, 1);
    assert.equal((await put('a', 2)).version, 2);
    await assert.rejects(put('a', 3, { ifMatch: 1 }), (e: AppError) => e.code === 'kv_version_mismatch');
    assert.equal((await put('a', 3, { ifMatch: 2 })).version, 3);
    await assert.rejects(put('a', 4, { ifNoneMatch: true }), (e: AppError) => e.code === 'kv_key_exists');
    assert.equal((await put('b', 'x', { ifNoneMatch: true })).version, 1);
    await put('gone', 1, { expiresAt: new Date(Date.now() - 1000).toISOString() });
    assert.equal(await store.kvGet(project.id, 'gone'), null);
    await put('c', true);
    await assert.rejects(put('d', 1), (e: AppError) => e.code === 'kv_key_limit');
    assert.equal((await store.kvGet(project.id, 'a'))?.value, '3');
    const listed = await store.kvList(project.id, '', { limit: 2, cursor: null });
    assert.deepEqual(listed.items.map((e) => e.key), ['a', 'b']);
    const rest = await store.kvList(project.id, '', { limit: 2, cursor: listed.next_cursor });
    assert.deepEqual(rest.items.map((e) => e.key), ['c']);
    assert.deepEqual((await store.kvList(project.id, 'b', { limit: 10, cursor: null })).items.map((e) => e.key), ['b']);
    assert.equal(await store.kvDelete(project, 'b'), true);
    assert.equal(await store.kvDelete(project, 'b'), false);
  });

  it('serialises concurrent compare-and-set writers: exactly one wins', async () => {
    await store.kvPut({ project, key: 'race', value: '0', ifMatch: null, ifNoneMatch: false, expiresAt: null, maxKeys: 100 });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) =>
      store.kvPut({ project, key: 'race', value: String(i), ifMatch: 1, ifNoneMatch: false, expiresAt: null, maxKeys: 100 })));
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
  });

  it('writes events with their changes, in id order, readable by project', async () => {
    const before = await store.latestEventId();
    await store.kvPut({ project, key: 'ev', value: '1', ifMatch: null, ifNoneMatch: false, expiresAt: null, maxKeys: 100 });
    await store.kvDelete(project, 'ev');
    await store.latestEventId(); // settles the high-water mark (PostgreSQL), as a stream's wake-up would
    const events = await store.readEvents({ projectId: project.id }, before, 100);
    assert.deepEqual(events.map((e) => e.type), ['kv.updated', 'kv.deleted']);
    assert.ok(events[0]!.id < events[1]!.id);
    assert.equal(events[0]!.data.key, 'ev');
    await assert.rejects(store.kvPut({ project, key: 'ev2', value: '1', ifMatch: 5, ifNoneMatch: false, expiresAt: null, maxKeys: 100 }));
    assert.equal(await store.latestEventId(), events[1]!.id, 'a refused change writes no event');
  });

  it('wakes subscribers after a commit', async () => {
    const woke = new Promise<number>((resolve) => {
      const off = store.subscribe((mark) => { off(); resolve(mark); });
    });
    await store.kvPut({ project, key: 'wake', value: '1', ifMatch: null, ifNoneMatch: false, expiresAt: null, maxKeys: 100 });
    assert.ok((await woke) > 0);
  });

  it('never lets a reader skip an event that commits late (concurrent writers)', async () => {
    const start = await store.latestEventId();
    const seen: number[] = [];
    let last = start;
    let done = false;
    const reader = (async () => {
      while (!done || last < (await store.latestEventId())) {
        for (const e of await store.readEvents({ projectId: project.id }, last, 100)) {
          seen.push(e.id);
          last = e.id;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
    })();
    await Promise.all(Array.from({ length: 200 }, (_, i) =>
      store.kvPut({ project, key: `c${i % 7}`, value: String(i), ifMatch: null, ifNoneMatch: false, expiresAt: null, maxKeys: 100 })));
    done = true;
    await reader;
    const all = (await store.readEvents({ projectId: project.id }, start, 1000)).map((e) => e.id);
    assert.equal(all.length, 200);
    assert.deepEqual(seen, all, 'the reader saw every event once, in id order');
  });

  it('prunes the events older than the cutoff and keeps the newer ones', async () => {
    const put = (key: string) => store.kvPut({ project, key, value: '1', ifMatch: null, ifNoneMatch: false, expiresAt: null, maxKeys: 100 });
    await put('old-1');
    await put('old-2');
    const oldTop = await store.latestEventId();
    await new Promise((r) => setTimeout(r, 15));
    const cutoff = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 15));
    await put('new-1');
    await put('new-2');
    const newTop = await store.latestEventId();
    await store.pruneEvents(cutoff);
    const through = await store.eventsPrunedThrough();
    assert.ok(through >= oldTop && through < newTop, `pruned through ${through}: old ones end at ${oldTop}, new ones at ${newTop}`);
    const left = await store.readEvents({}, 0, 100);
    assert.equal(left.length, 2, 'both newer events are kept');
    assert.ok(left.every((e) => e.id > oldTop && e.created_at >= cutoff), JSON.stringify(left));
    assert.equal(await store.pruneEvents(cutoff), 0, 'nothing more to prune at the same cutoff');
  });

  it('prunes events and remembers how far', async () => {
    const top = await store.latestEventId();
    await store.pruneEvents(new Date(Date.now() + 1000).toISOString());
    assert.equal(await store.eventsPrunedThrough(), top);
    assert.deepEqual(await store.readEvents({}, 0, 10), []);
  });

  it('deletes a project with everything in it', async () => {
    const p = await store.createProject(accountId, { name: 'doomed', remote_dir: null, description: null, env: {} });
    await store.publishRevision(p, { content_hash: 'sha256:d', tarball_sha256: 'd'.repeat(64), size_bytes: 1, files: [], manifest: {}, manifest_warnings: [] }, 10);
    const { tarballs } = await store.deleteProject(p);
    assert.deepEqual(tarballs, ['d'.repeat(64)]);
    assert.equal(await store.getProject(accountId, 'doomed'), null);
  });

  it('invalidates and answers readiness with no workers', async () => {
    const snapshot = await store.readinessSnapshot(project, 'sha256:bb');
    assert.deepEqual(snapshot, { workers: [], runtimes: [], jobs: { queued: 0, running: 0 } });
    const at = await store.invalidate(project);
    assert.equal((await store.getProject(accountId, 'p1'))?.invalidated_at, at);
    assert.deepEqual(await store.cancelQueued(project), { cancelled_jobs: 0, cancelled_tasks: 0 });
  });
});

// PostgreSQL only: ids that commit out of order. (SQLite has one writer, so the case cannot arise there.)
if (storeKind() === 'postgres') {
  describe('event high-water mark (postgres)', () => {
    it('holds readers at a gap until the transaction that owns it ends, then moves past it', async () => {
      const { default: pg } = await import('pg');
      const dir = await mkdtemp(join(tmpdir(), 'computalot-hwm-'));
      const db = await testDatabase();
      const store = await openStore({ databaseUrl: db.url, sqlitePath: join(dir, 'unused') });
      const slow = new pg.Client(db.url!);
      const fast = new pg.Client(db.url!);
      await slow.connect();
      await fast.connect();
      const insert = `insert into events (account_id, type, data, created_at) values ('acc', 't', '{}', now()::text) returning id`;
      try {
        const base = await store.latestEventId();
        await slow.query('begin');
        await slow.query('select pg_current_xact_id()');
        const held = Number((await slow.query(insert)).rows[0].id);
        await fast.query('begin');
        await fast.query('select pg_current_xact_id()');
        const later = Number((await fast.query(insert)).rows[0].id);
        await fast.query('commit');
        assert.ok(later > held);
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(await store.latestEventId(), base, 'the mark waits below the uncommitted id');
        assert.deepEqual(await store.readEvents({}, base, 10), []);
        await slow.query('commit');
        let mark = base;
        for (let i = 0; i < 100 && mark < later; i += 1) {
          await new Promise((r) => setTimeout(r, 20));
          mark = await store.latestEventId();
        }
        assert.deepEqual((await store.readEvents({}, base, 10)).map((e) => e.id), [held, later]);

        // A rolled-back id is a permanent gap: the mark moves past it once its owner has ended.
        await slow.query('begin');
        await slow.query('select pg_current_xact_id()');
        await slow.query(insert);
        const after = Number((await fast.query(insert)).rows[0].id);
        await slow.query('rollback');
        for (let i = 0; i < 100 && mark < after; i += 1) {
          await new Promise((r) => setTimeout(r, 20));
          mark = await store.latestEventId();
        }
        assert.equal(mark, after);
      } finally {
        await slow.end();
        await fast.end();
        await store.close();
        await db.drop();
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
}
