/**
 * The running_tasks quota (SPEC §11) in the lease, on each database: an account at its cap gets no more
 * tasks leased (its tasks wait in the queue, other accounts' go ahead of them), an ended task frees room,
 * and concurrent leases never take an account past its cap.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LeasedTask, Quotas, Worker } from '../../src/core/model.js';
import type { CreateOutcome, Store } from '../../src/store/port.js';
import { openStore } from '../../src/store/sql-store.js';
import { storeKind, type TestDatabase } from '../helpers/db.js';
import { publishedProject, storeJob, testStore, succeededReport } from '../helpers/store-jobs.js';

const quotas = (running: number | null): Quotas => ({ projects: null, stored_bytes: null, running_tasks: running, queued_tasks: null });

describe(`running_tasks quota in the lease (${storeKind()})`, () => {
  let store: Store;
  let db: TestDatabase;
  let dir: string;
  let worker: Worker;
  let seq = 0;

  /** An account with one pushed project; `submit(n)` queues a job of n tasks for it. */
  async function account(running: number | null) {
    seq += 1;
    const acc = await store.createAccount({ name: `acc${seq}`, quotas: quotas(running) });
    const { project, revision } = await publishedProject(store, acc.id);
    const submit = async (tasks: number) => ((await store.createJobs([storeJob(project, revision, { tasks })])).outcomes[0] as CreateOutcome).job_id;
    return { id: acc.id, submit };
  }
  const lease = (slots: number, prefetch = 0) => store.leaseTasks({ workerId: worker.id, node: worker.node, profile: 'cpu', slots, prefetch });
  const byAccount = (tasks: LeasedTask[]) => {
    const counts: Record<string, number> = {};
    for (const t of tasks) counts[t.account_id] = (counts[t.account_id] ?? 0) + 1;
    return counts;
  };
  const cancelAll = async (jobIds: string[]) => { for (const id of jobIds) await store.cancelJob(id, 'test done'); };

  let opened: Awaited<ReturnType<typeof testStore>>;
  before(async () => {
    opened = await testStore('computalot-running-quota-');
    ({ store, db, dir } = opened);
    worker = await store.registerWorker({ embedded: true, profile: 'cpu', resources: {}, runtime: { kind: 'process' }, slots: 8, token_id: null });
  });
  after(() => opened.close());

  // First: no account has a cap yet, so this process's leases run without the caps' part (PostgreSQL).
  it('a cap set by another server holds from this server\'s second lease after it', async () => {
    const acc = await account(null);
    const jobs = [await acc.submit(8)];
    assert.equal((await lease(1)).length, 1);
    const other = await openStore({ databaseUrl: db.url, sqlitePath: join(dir, 'db.sqlite') });
    try {
      await other.setQuotas(acc.id, quotas(2));
    } finally {
      await other.close();
    }
    // PostgreSQL's first lease after it may still miss it (it runs the plain lease until it sees a cap);
    // SQLite reads the caps on every lease. From the next lease on it holds on both.
    const first = (await lease(3)).length;
    if (storeKind() === 'sqlite') assert.equal(first, 1, 'one more, up to the cap of 2');
    assert.deepEqual(await lease(3), [], 'the account is at (or past) its cap of 2: nothing more');
    await cancelAll(jobs);
  });

  it('leases a capped account only up to its cap, and the tasks queued behind its own go ahead', async () => {
    const capped = await account(2);
    const free = await account(null);
    const jobs = [await capped.submit(5), await free.submit(3)];
    const first = await lease(4);
    assert.deepEqual(byAccount(first), { [capped.id]: 2, [free.id]: 2 }, 'two of the capped account, then the others behind its tasks');
    const second = await lease(4);
    assert.deepEqual(byAccount(second), { [free.id]: 1 }, 'the capped account is at its cap');
    // An ended task frees one place.
    await store.reportAndLease({ started: [], live: [], ended: [succeededReport(first.find((t) => t.account_id === capped.id)!)] },
      { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 0 });
    assert.deepEqual(byAccount(await lease(4)), { [capped.id]: 1 });
    assert.deepEqual(await lease(4), []);
    // Lifting the cap lets the rest go.
    await store.setQuotas(capped.id, quotas(null));
    assert.deepEqual(byAccount(await lease(4)), { [capped.id]: 2 });
    await cancelAll(jobs);
  });

  it('prefetch counts against the cap too', async () => {
    const capped = await account(3);
    const jobs = [await capped.submit(10)];
    const got = await lease(1, 8);
    assert.equal(got.length, 3, 'one for the slot and two held: the cap counts every leased task');
    assert.deepEqual(await lease(1, 8), []);
    await cancelAll(jobs);
  });

  it('concurrent leases never take an account past its cap', async () => {
    const capped = await account(3);
    const jobs = [await capped.submit(20)];
    const results = await Promise.all(Array.from({ length: 8 }, () => lease(2)));
    assert.equal(results.flat().length, 3);
    await cancelAll(jobs);
  });
});
