/**
 * Fair sharing in the lease (SPEC §8, core/fair-share.ts), on each database: when more than one account or
 * project has tasks queued, free slots go to whoever holds the fewest leased tasks, not to whoever queued
 * first; a single project's queue keeps its plain order; caps and prefetch still hold.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Quotas, Worker } from '../../src/core/model.js';
import type { CreateOutcome, Store } from '../../src/store/port.js';
import { storeKind } from '../helpers/db.js';
import { makeAccount } from '../helpers/http.js';
import { pushFixture, submit, waitJob } from '../helpers/jobs.js';
import { startTestServer } from '../helpers/server.js';
import { publishedProject, storeJob, testStore, succeededReport } from '../helpers/store-jobs.js';

const quotas = (running: number | null): Quotas => ({ projects: null, stored_bytes: null, running_tasks: running, queued_tasks: null });

describe(`fair sharing in the lease (${storeKind()})`, () => {
  let store: Store;
  let worker: Worker;
  let seq = 0;
  let jobs: string[] = [];

  /** An account; `project(name)` gives a pushed project whose `submit(n, priority)` queues a job of n tasks. */
  async function account(running: number | null = null) {
    seq += 1;
    const acc = await store.createAccount({ name: `fair${seq}`, quotas: quotas(running) });
    const project = async (name: string) => {
      const { project: p, revision } = await publishedProject(store, acc.id, name);
      const submit = async (tasks: number, priority = 0) => {
        const id = ((await store.createJobs([storeJob(p, revision, { tasks, priority })])).outcomes[0] as CreateOutcome).job_id;
        jobs.push(id);
        return id;
      };
      return { id: p.id, submit };
    };
    return { id: acc.id, project };
  }
  const lease = (slots: number, prefetch = 0) => store.leaseTasks({ workerId: worker.id, node: worker.node, profile: 'cpu', slots, prefetch });
  let opened: Awaited<ReturnType<typeof testStore>>;
  before(async () => {
    opened = await testStore('computalot-fair-');
    ({ store } = opened);
    worker = await store.registerWorker({ embedded: true, profile: 'cpu', resources: {}, runtime: { kind: 'process' }, slots: 8, token_id: null });
  });
  after(() => opened.close());
  // Each case starts with nothing queued or held: what a case leaves is cancelled.
  afterEach(async () => {
    for (const id of jobs) await store.cancelJob(id, 'test done');
    jobs = [];
  });

  it('a second account\'s tasks share the slots at once, not after the first account\'s whole queue', async () => {
    const a = await (await account()).project('p');
    const b = await (await account()).project('p');
    const big = await a.submit(20);
    // Only a's project queued: the plain order, a's first two.
    const first = await lease(2);
    assert.deepEqual(first.map((t) => t.job_id), [big, big]);
    const small = await b.submit(3);
    // a holds 2, b nothing: b catches up with a's two, then they take turns (a's older task first on the tie).
    assert.deepEqual((await lease(4)).map((t) => t.job_id), [small, small, big, small]);
    // The slots freed by a's first two go to a again (b has nothing left queued), in a's own order.
    const next = await store.reportAndLease({ started: [], live: [], ended: first.map(succeededReport) },
      { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 2 });
    assert.deepEqual(next.leased.map((t) => [t.job_id, t.index]), [[big, 3], [big, 4]]);
  });

  it('alternates between accounts that hold nothing, the older queue first', async () => {
    const a = await (await account()).project('p');
    const b = await (await account()).project('p');
    const ja = await a.submit(5);
    const jb = await b.submit(5);
    assert.deepEqual((await lease(4)).map((t) => t.job_id), [ja, jb, ja, jb]);
  });

  it('shares an account\'s slots between its projects', async () => {
    const acc = await account();
    const x = await acc.project('x');
    const y = await acc.project('y');
    const jx = await x.submit(6);
    assert.equal((await lease(2)).length, 2);
    const jy = await y.submit(6);
    assert.deepEqual((await lease(4)).map((t) => t.job_id), [jy, jy, jx, jy], 'y catches up with x\'s two, then they take turns');
  });

  it('priority orders an account\'s own work, and does not pass an account holding less', async () => {
    const a = await account();
    const ax = await a.project('x');
    const ay = await a.project('y');
    const b = await (await account()).project('p');
    const low = await ax.submit(3, 0);
    const high = await ay.submit(2, 9);
    const other = await b.submit(2, 0);
    // Tied at nothing held, a's queue is older; within a its high-priority job goes first.
    assert.deepEqual((await lease(4)).map((t) => t.job_id), [high, other, high, other]);
    assert.deepEqual((await lease(1)).map((t) => t.job_id), [low]);
  });

  it('a capped account gets no more than its cap; the others take the rest', async () => {
    const capped = await (await account(1)).project('p');
    const free = await (await account()).project('p');
    const jc = await capped.submit(5);
    const jf = await free.submit(5);
    assert.deepEqual((await lease(4)).map((t) => t.job_id), [jc, jf, jf, jf]);
    assert.deepEqual((await lease(4)).map((t) => t.job_id), [jf, jf]);
    assert.deepEqual(await lease(4), []);
  });

  it('concurrent fair leases never lease a task twice, nor take a capped account past its cap', async () => {
    const capped = await account(3);
    const cp = await capped.project('p');
    const free = await (await account()).project('p');
    await cp.submit(20);
    await free.submit(5);
    const got = (await Promise.all(Array.from({ length: 8 }, () => lease(2)))).flat();
    assert.equal(new Set(got.map((t) => t.task_id)).size, got.length, 'each task leased once');
    assert.ok(got.filter((t) => t.account_id === capped.id).length <= 3, 'the cap of 3 holds');
    assert.ok(got.length > 0);
  });

  it('prefetch in a shared queue continues only jobs that are running', async () => {
    const a = await (await account()).project('p');
    const b = await (await account()).project('p');
    const ja = await a.submit(4);
    assert.equal((await lease(1)).length, 1);
    const jb = await b.submit(2);
    const unstarted = await b.submit(2);
    // The slot goes to b (holding nothing); then prefetch: a's running job, b's job just started, and
    // then b's other job has not started: it stops there.
    const got = await lease(1, 4);
    assert.deepEqual(got.map((t) => t.job_id), [jb, ja, jb, ja]);
    assert.equal((await store.getJob(got[0]!.account_id, unstarted))!.status, 'queued');
  });
});

describe(`fair sharing through the API, with an embedded worker (${storeKind()})`, () => {
  it('a one-task job of a second account runs while the first account\'s long fan-out is still queued', async () => {
    const srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '2' });
    try {
      const a = await makeAccount(srv.url, 'fair-a');
      const b = await makeAccount(srv.url, 'fair-b');
      await pushFixture(srv.url, a.member, 'p');
      await pushFixture(srv.url, b.member, 'p');
      // 20 tasks of 0.3 s on 2 slots: about 3 s of work queued ahead of b's job.
      const big = await submit(srv.url, a.member, { project: 'p', payload: { mode: 'sleep', seconds: 0.3 }, fan_out: { items: Array.from({ length: 20 }, (_, i) => i) } });
      await waitJob(srv.url, a.member, big.id, (j) => j.tasks.running === 2);
      const small = await submit(srv.url, b.member, { project: 'p', payload: { mode: 'square', x: 3 } });
      const done = await waitJob(srv.url, b.member, small.id);
      assert.equal(done.status, 'completed');
      const other = await waitJob(srv.url, a.member, big.id, () => true);
      assert.ok(other.tasks.queued >= 10, `b's job took the first free slot; a still had ${other.tasks.queued} of 20 queued (FIFO would have run them all first)`);
      await waitJob(srv.url, a.member, big.id);
    } finally {
      await srv.stop();
    }
  });
});
