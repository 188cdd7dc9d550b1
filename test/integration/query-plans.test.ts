/**
 * Statements that run all the time must find what they need through an index, not read the tasks table:
 * a full read grows with every task ever run. The job sweeper (every second), the queued_tasks quota's
 * count (every submit of an account with the quota), the lease's running_tasks statements (every lease). SQLite only: its query plans are fixed by the schema
 * and the statement (PostgreSQL's depend on statistics), and the statements are the same Kysely ones on both.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { openStore } from '../../src/store/sql-store.js';
import type { Store } from '../../src/store/port.js';
import { storeJob } from '../helpers/store-jobs.js';

type Captured = { source: string; args: unknown[] };

/** Records every statement better-sqlite3 runs while `fn` does, with its bound values. */
async function capture(fn: () => Promise<unknown>): Promise<Captured[]> {
  const probe = new BetterSqlite3(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('select 1')) as Record<string, (...a: unknown[]) => unknown>;
  probe.close();
  const seen: Captured[] = [];
  const originals = Object.fromEntries(['run', 'all', 'get'].map((m) => [m, proto[m]!]));
  for (const [m, original] of Object.entries(originals)) {
    proto[m] = function (this: { source: string }, ...args: unknown[]) {
      seen.push({ source: this.source, args });
      return original.apply(this, args);
    };
  }
  try {
    await fn();
  } finally {
    Object.assign(proto, originals);
  }
  return seen;
}

/** The SQLite query plan of each statement on tasks (or what `on` matches) that `fn` runs (its plan lines, e.g. "SEARCH tasks USING INDEX …"). */
async function taskPlans(path: string, fn: () => Promise<unknown>, on = /\btasks\b/): Promise<Array<{ source: string; plan: string[] }>> {
  const statements = (await capture(fn)).filter((s) => on.test(s.source));
  const db = new BetterSqlite3(path, { readonly: true });
  try {
    return statements.map(({ source, args }) => ({
      source,
      plan: (db.prepare(`explain query plan ${source}`).all(...(args as unknown[][])) as Array<{ detail: string }>).map((r) => r.detail),
    }));
  } finally {
    db.close();
  }
}

describe('query plans of statements that run all the time (sqlite)', () => {
  let dir: string;
  let store: Store;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'computalot-plans-'));
    store = await openStore({ sqlitePath: join(dir, 'db.sqlite') });
  });
  after(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('the queued_tasks count reads only the account\'s queued tasks', async () => {
    const [counted] = await taskPlans(join(dir, 'db.sqlite'), () => store.queuedTaskCount('acc_x'));
    assert.ok(counted);
    assert.ok(counted.plan.some((d) => /^SEARCH tasks USING (COVERING )?INDEX tasks_group_queue \(account_id=\?\)/.test(d)), counted.plan.join('; '));
  });

  it('the sweep reads tasks only through indexes that hold what it changes (leases held, queued tasks with a deadline)', async () => {
    const statements = await taskPlans(join(dir, 'db.sqlite'), () => store.sweep(new Date().toISOString()));
    assert.ok(statements.length >= 2, `the sweep's statements on tasks: ${statements.map((s) => s.source).join(' | ')}`);
    for (const { source, plan } of statements) {
      assert.ok(!plan.some((d) => /^SCAN tasks\b/.test(d)), `${source}\n  reads the whole table or index: ${plan.join('; ')}`);
      assert.ok(plan.some((d) => /^SEARCH tasks USING (COVERING )?INDEX (tasks_leases|tasks_queue_deadline)\b/.test(d)), `${source}\n  ${plan.join('; ')}`);
    }
  });
  it('a lease reads capped accounts through their partial index, and their leased tasks through tasks_leases', async () => {
    const account = await store.createAccount({ name: 'capped', quotas: { projects: null, stored_bytes: null, running_tasks: 1, queued_tasks: null } });
    const project = await store.createProject(account.id, { name: 'p', remote_dir: null, description: null, env: {} });
    const { revision } = await store.publishRevision(project, {
      content_hash: 'sha256:cc', tarball_sha256: 'c'.repeat(64), size_bytes: 10, files: [], manifest: {}, manifest_warnings: [],
    }, 10);
    await store.createJobs([{
      account_id: account.id, project_id: project.id, project: project.name, revision_id: revision.id, content_hash: revision.content_hash,
      type: 'structured_runner', priority: 0, timeout_s: 60, queue_timeout_s: null, max_attempts: 1, backoff_s: 0, checkpoint: false,
      runner_command: ['true'], env: {}, meta: null, variant: null, profile: 'cpu', requirements: {}, reduce: null, objective: null,
      spec: {}, idempotency: null, tasks_total: 3,
      tasks: [0, 1, 2].map((index) => ({ index, kind: 'task', payload: {}, item: null, runner_command: null, meta: {} })),
    }]);
    const worker = await store.registerWorker({ embedded: true, profile: 'cpu', resources: {}, runtime: { kind: 'process' }, slots: 2, token_id: null });
    const statements = await taskPlans(join(dir, 'db.sqlite'), () => store.leaseTasks({ workerId: worker.id, node: worker.node, profile: 'cpu', slots: 2 }), /\b(tasks|accounts)\b/);
    const caps = statements.find((s) => /running_tasks_cap is not null/.test(s.source));
    assert.ok(caps, 'the lease reads the capped accounts');
    assert.ok(caps.plan.some((d) => /^SCAN accounts USING (COVERING )?INDEX accounts_running_cap\b/.test(d)), caps.plan.join('; '));
    const held = statements.find((s) => /count\(\*\)/.test(s.source) && /\btasks\b/.test(s.source));
    assert.ok(held, 'the lease counts the capped accounts\' leased tasks');
    assert.ok(held.plan.some((d) => /^SCAN tasks USING (COVERING )?INDEX tasks_leases\b/.test(d)), held.plan.join('; '));
    for (const { source, plan } of statements) {
      assert.ok(!plan.some((d) => /^SCAN (tasks|accounts)$/.test(d)), `${source}\n  reads the whole table: ${plan.join('; ')}`);
    }
    // A lease with one pair queued reads the queue index (tasks_queue); one with two (the fair lease)
    // reads each pair's tasks through tasks_group_queue; both in index order (no sort), and no statement
    // reads the whole tasks table.
    for (const second of [false, true]) {
      if (second) {
        const other = await store.createProject(account.id, { name: 'q', remote_dir: null, description: null, env: {} });
        await store.createJobs([storeJob(other, revision, { tasks: 2 })]);
      }
      const leased = await taskPlans(join(dir, 'db.sqlite'), () => store.leaseTasks({ workerId: worker.id, node: worker.node, profile: 'cpu', slots: 1 }));
      const candidates = leased.filter((s) => /order by priority desc, available_at, id/.test(s.source));
      assert.ok(candidates.length >= 1, `${second ? 'fair' : 'plain'} lease: its candidate queries`);
      const index = second ? /^SEARCH tasks USING INDEX tasks_group_queue \(account_id=\? AND project_id=\? AND profile=\?\)/ : /^SEARCH tasks USING INDEX tasks_queue \(profile=\?\)/;
      for (const { source, plan } of candidates) {
        assert.ok(plan.some((d) => index.test(d)), `${source}\n  ${plan.join('; ')}`);
        assert.ok(!plan.some((d) => /TEMP B-TREE/.test(d)), `${source}\n  sorts: ${plan.join('; ')}`);
      }
      for (const { source, plan } of leased) assert.ok(!plan.some((d) => /^SCAN tasks$/.test(d)), `${source}\n  reads the whole table: ${plan.join('; ')}`);
    }
    // What a waiting job's status_reason counts, the same way.
    const [counted] = await taskPlans(join(dir, 'db.sqlite'), () => store.leasedTaskCount(account.id));
    assert.ok(counted);
    assert.ok(counted.plan.some((d) => /^SCAN tasks USING (COVERING )?INDEX tasks_leases\b/.test(d)), counted.plan.join('; '));
  });
});
