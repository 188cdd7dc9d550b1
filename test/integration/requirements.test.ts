/**
 * Placement by `requirements` (SPEC §6 minimums, core/worker-fit.ts), on each database: a lease takes only
 * tasks whose minimums the worker's capacity meets (in the plain order and in the fair one), a job no live
 * worker can take waits with a reason that says so, and a migrated queue gets its jobs' minimums.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Capacity } from '../../src/core/worker-fit.js';
import type { Worker } from '../../src/core/model.js';
import type { CreateOutcome, Store } from '../../src/store/port.js';
import { connect } from '../../src/store/connect.js';
import { backfillQueuedRequirements } from '../../src/store/migrations/008-task-requirements.js';
import { storeKind, type TestDatabase } from '../helpers/db.js';
import { call, makeAccount } from '../helpers/http.js';
import { pushFixture, submit, waitJob } from '../helpers/jobs.js';
import { startTestServer } from '../helpers/server.js';
import { publishedProject, storeJob, succeededReport, testStore } from '../helpers/store-jobs.js';

const noQuotas = { projects: null, stored_bytes: null, running_tasks: null, queued_tasks: null };
const small: Capacity = { cpu: 2, memory_gb: 4, storage_gb: 10, gpu_count: 0 };

describe(`placement by requirements in the lease (${storeKind()})`, () => {
  let store: Store;
  let db: TestDatabase;
  let dir: string;
  let worker: Worker;
  let seq = 0;
  let jobs: string[] = [];

  /** A pushed project of a new account; `submit(requirements, tasks)` queues a job for it. */
  async function project() {
    seq += 1;
    const acc = await store.createAccount({ name: `req${seq}`, quotas: noQuotas });
    const { project: p, revision } = await publishedProject(store, acc.id);
    return async (requirements: Record<string, number>, tasks = 1) => {
      const id = ((await store.createJobs([storeJob(p, revision, { tasks, requirements })])).outcomes[0] as CreateOutcome).job_id;
      jobs.push(id);
      return id;
    };
  }
  const lease = (slots: number, capacity?: Capacity) =>
    store.leaseTasks({ workerId: worker.id, node: worker.node, profile: 'cpu', slots, ...(capacity ? { capacity } : {}) });

  let opened: Awaited<ReturnType<typeof testStore>>;
  before(async () => {
    opened = await testStore('computalot-req-');
    ({ store, db, dir } = opened);
    worker = await store.registerWorker({ embedded: true, profile: 'cpu', resources: { ...small }, runtime: { kind: 'process' }, slots: 4, token_id: null });
  });
  after(() => opened.close());
  afterEach(async () => {
    for (const id of jobs) await store.cancelJob(id, 'test done');
    jobs = [];
  });

  it('passes over tasks whose minimums the worker does not meet; they wait for one that does', async () => {
    const submitTo = await project();
    const big = await submitTo({ memory_gb: 8 });
    const fits = await submitTo({ memory_gb: 2, cpu: 2 });
    const plain = await submitTo({});
    const gpus = await submitTo({ gpu_count: 1 });
    const many = await submitTo({ storage_gb: 11 });
    assert.deepEqual((await lease(5, small)).map((t) => t.job_id), [fits, plain], 'the 8 GB, GPU and 11 GB jobs wait');
    assert.deepEqual(await lease(5, small), []);
    // A worker that reported nothing is not refused by what it did not say.
    assert.deepEqual((await lease(5)).map((t) => t.job_id), [big, gpus, many]);
  });

  it('holds in the fair order too (more than one account queued)', async () => {
    const a = await project();
    const b = await project();
    const tooBig = await a({ cpu: 16 }, 2);
    const ok = await b({ cpu: 1 }, 2);
    assert.deepEqual((await lease(4, small)).map((t) => t.job_id), [ok, ok]);
    assert.deepEqual((await lease(4, { ...small, cpu: 16 })).map((t) => t.job_id), [tooBig, tooBig]);
  });

  it('a map_reduce job\'s reduce task keeps the job\'s minimums', async () => {
    seq += 1;
    const acc = await store.createAccount({ name: `req${seq}`, quotas: noQuotas });
    const { project: p, revision } = await publishedProject(store, acc.id);
    const job = {
      ...storeJob(p, revision, { requirements: { cpu: 2 } }), type: 'map_reduce' as const, tasks_total: 2,
      tasks: [{ index: 0, kind: 'map', payload: {}, item: null, runner_command: null, meta: {} }],
      reduce: { index: 1, runner_command: ['true'], payload: {} },
    };
    const id = ((await store.createJobs([job])).outcomes[0] as CreateOutcome).job_id;
    jobs.push(id);
    const [map] = await lease(1, small);
    assert.equal(map?.kind, 'map');
    await store.reportAndLease({ started: [], live: [], ended: [succeededReport(map!)] }, { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 0 });
    assert.deepEqual(await lease(1, { ...small, cpu: 1 }), [], 'a 1-CPU worker passes over the reduce');
    assert.deepEqual((await lease(1, small)).map((t) => [t.job_id, t.kind]), [[id, 'reduce']]);
  });

  it('a migrated queue gets its jobs\' minimums (migration 008)', async () => {
    const submitTo = await project();
    const job = await submitTo({ memory_gb: 8, cpu: 1 });
    const conn = await connect({ databaseUrl: db.url, sqlitePath: join(dir, 'db.sqlite') });
    try {
      // As a task queued before the migration: no minimums of its own.
      await conn.db.updateTable('tasks').set({ min_cpu: null, min_memory_gb: null, min_storage_gb: null, min_gpu_count: null }).where('job_id', '=', job).execute();
      assert.equal((await lease(1, small)).length, 1, 'without its minimums the small worker takes it');
      await store.cancelJob(job, 'test');
      const again = await submitTo({ memory_gb: 8, cpu: 1 });
      await conn.db.updateTable('tasks').set({ min_cpu: null, min_memory_gb: null }).where('job_id', '=', again).execute();
      await backfillQueuedRequirements(conn.db, conn.dialect);
      const row = await conn.db.selectFrom('tasks').select(['min_cpu', 'min_memory_gb', 'min_storage_gb']).where('job_id', '=', again).executeTakeFirstOrThrow();
      assert.deepEqual(row, { min_cpu: 1, min_memory_gb: 8, min_storage_gb: null });
      assert.deepEqual(await lease(1, small), [], 'back-filled: the 4 GB worker passes over it');
    } finally {
      await conn.close();
    }
  });
});

describe(`requirements through the API, with an embedded worker (${storeKind()})`, () => {
  it('runs a job the machine meets; one it cannot meet waits and says why', async () => {
    const srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '2' });
    try {
      const acc = await makeAccount(srv.url, 'req');
      await pushFixture(srv.url, acc.member, 'p');
      const huge = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'square', x: 2 }, requirements: { memory_gb: 1_000_000 } });
      const fine = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'square', x: 3 }, requirements: { cpu: 1, memory_gb: 0.25, storage_gb: 0.001 } });
      const done = await waitJob(srv.url, acc.member, fine.id);
      assert.equal(done.status, 'completed');
      const waiting = (await call(srv.url, 'GET', `/api/v1/jobs/${huge.id}`, { token: acc.member })).body;
      assert.equal(waiting.status, 'queued');
      assert.match(waiting.status_reason, /^waiting for a worker that meets the requirements: none of the 1 live worker\(s\) has memory_gb ≥ 1000000 \(the most a live worker has is [\d.]+\)$/);
      const { workers } = (await call(srv.url, 'GET', '/api/v1/admin/workers')).body;
      const { resources } = workers.find((w: { status: string }) => w.status === 'online');
      assert.ok(resources.cpu >= 1 && resources.memory_gb > 0 && resources.storage_gb > 0 && resources.gpu_count === 0,
        `the embedded worker reports the machine: ${JSON.stringify(resources)}`);
      assert.equal((await call(srv.url, 'POST', `/api/v1/jobs/${huge.id}/cancel`, { token: acc.member })).status, 200);
    } finally {
      await srv.stop();
    }
  });
});
