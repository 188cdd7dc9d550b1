/**
 * Leasing and batched worker reports at the store, on each database (scripts/test.sh runs it per store):
 * prefetch takes only a continuation of queue order from jobs already running, and a batch of reports
 * (one statement per kind on the way in) still answers each report on its own.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { AttemptReport, LeasedTask, Worker } from '../../src/core/model.js';
import type { CreateOutcome, NewJob, Project, Store } from '../../src/store/port.js';
import { connect } from '../../src/store/connect.js';
import { openStore } from '../../src/store/sql-store.js';
import { storeKind, testDatabase, type TestDatabase } from '../helpers/db.js';

const noQuotas = { projects: null, stored_bytes: null, running_tasks: null, queued_tasks: null };

describe(`leases and batched reports (${storeKind()})`, () => {
  let store: Store;
  let db: TestDatabase;
  let dir: string;
  let accountId: string;
  let project: Project;
  let revision: { id: string; content_hash: string };
  let worker: Worker;

  const job = (tasks: number, priority = 0): NewJob => ({
    account_id: accountId, project_id: project.id, project: project.name, revision_id: revision.id,
    content_hash: revision.content_hash, type: 'structured_runner', priority, timeout_s: 60, queue_timeout_s: null,
    max_attempts: 3, backoff_s: 0, checkpoint: false, runner_command: ['true'], env: {}, meta: null, variant: null,
    profile: 'cpu', requirements: {}, reduce: null, objective: null, spec: {}, idempotency: null, tasks_total: tasks,
    tasks: Array.from({ length: tasks }, (_, index) => ({ index, kind: 'task', payload: { index }, item: null, runner_command: null, meta: {} })),
  });
  const create = async (tasks: number, priority = 0) => ((await store.createJobs([job(tasks, priority)])).outcomes[0] as CreateOutcome).job_id;
  const lease = (slots: number, prefetch = 0) => store.leaseTasks({ workerId: worker.id, node: worker.node, profile: 'cpu', slots, prefetch });
  const ended = (task: LeasedTask, outcome: AttemptReport['outcome'], token = task.lease_token): AttemptReport => ({
    task_id: task.task_id, attempt: task.attempt, lease_token: token, exit_code: outcome === 'succeeded' ? 0 : null, outcome,
    error: null, output: 'out', output_tail: 'out', result: { ok: task.index }, result_quality: 1, result_warnings: [],
    duration_ms: 3, started_at: new Date().toISOString(), finished_at: new Date().toISOString(), cold_start: null,
  });
  const statusOf = async (jobId: string) => (await store.getJob(accountId, jobId))!.status;
  /** Every event of a job, once the high-water mark has passed this test's commits (PostgreSQL). */
  const eventsOf = async (jobId: string) => {
    await store.latestEventId();
    const all = [];
    for (let after = 0; ;) {
      const page = await store.readEvents({ jobId }, after, 5_000);
      if (page.length === 0) return all;
      all.push(...page);
      after = page[page.length - 1]!.id;
    }
  };
  const tasksOf = async (jobId: string) => (await store.listTasks(jobId, { limit: 100, cursor: null })).items;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'computalot-lease-'));
    db = await testDatabase();
    store = await openStore({ databaseUrl: db.url, sqlitePath: join(dir, 'db.sqlite') });
    accountId = (await store.createAccount({ name: 'acme', quotas: noQuotas })).id;
    project = await store.createProject(accountId, { name: 'p1', remote_dir: null, description: null, env: {} });
    const published = await store.publishRevision(project, {
      content_hash: 'sha256:aa', tarball_sha256: 'a'.repeat(64), size_bytes: 10, files: [], manifest: {}, manifest_warnings: [],
    }, 10);
    revision = published.revision;
    worker = await store.registerWorker({ embedded: true, profile: 'cpu', resources: {}, runtime: { kind: 'process' }, slots: 2, token_id: null });
  });
  after(async () => {
    await store.close();
    await db.drop();
    await rm(dir, { recursive: true, force: true });
  });
  beforeEach(async () => {
    // Each case starts with an empty queue: whatever an earlier case left queued is cancelled.
    for (const j of (await store.listJobs(accountId, { projectId: project.id }, { limit: 100, cursor: null })).items) {
      await store.cancelJob(j.id, 'test reset');
    }
  });

  it('prefetches only from jobs already running, and stops at the first task of a job nobody started', async () => {
    const a = await create(3);
    const b = await create(2);
    const got = await lease(1, 5);
    // One for the free slot (a's first: a starts in this lease), then a's other two; b's first stops it.
    assert.deepEqual(got.map((t) => [t.job_id, t.index]), [[a, 0], [a, 1], [a, 2]]);
    assert.equal(await statusOf(a), 'running');
    assert.equal(await statusOf(b), 'queued', 'a job none of whose tasks is held stays queued (cancel-queued still applies)');
    const reasons = (await tasksOf(a)).map((t) => t.status_reason);
    assert.deepEqual(reasons, [`preparing runtime on ${worker.node}`, `leased by ${worker.node}, waiting for a free slot`, `leased by ${worker.node}, waiting for a free slot`]);
    // Prefetch alone takes nothing from a job that has not started.
    assert.deepEqual(await lease(0, 5), []);
    // A free slot takes b in queue order, and then prefetch may follow it.
    assert.deepEqual((await lease(1, 5)).map((t) => [t.job_id, t.index]), [[b, 0], [b, 1]]);
  });

  it('never lets prefetch pass a higher-priority job', async () => {
    const low = await create(4);
    assert.equal((await lease(1)).length, 1);
    const high = await create(1, 5);
    // low is running and has three tasks queued, but high heads the queue: prefetch stops at once.
    assert.deepEqual(await lease(0, 3), []);
    // A free slot takes high; prefetch may then go on with low, which is running.
    assert.deepEqual((await lease(1, 3)).map((t) => t.job_id), [high, low, low, low]);
    assert.equal(await statusOf(low), 'running');
  });

  it('answers each report of a batch on its own: a stale lease changes nothing, the others apply', async () => {
    const j = await create(3);
    const [t0, t1, t2] = await lease(3);
    const { ended: results, leased } = await store.reportAndLease({
      started: [t0!, t1!, t2!].map((t) => ({ task_id: t.task_id, attempt: t.attempt, lease_token: t.lease_token, started_at: new Date().toISOString(), node: worker.node })),
      live: [{ task_id: t2!.task_id, lease_token: t2!.lease_token, output_tail: 'tail', progress: { progress: 0.5, message: 'half' } }],
      ended: [ended(t0!, 'succeeded'), ended(t1!, 'succeeded', 'not-the-token'), ended(t2!, 'handed_back')],
    }, { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 1 });
    assert.deepEqual(results.map((r) => (r.ok ? r.status : r.code)), ['completed', 'lease_mismatch', 'queued']);
    // The handed-back task is queued again without spending its attempt, and leased again here.
    assert.deepEqual(leased.map((t) => [t.task_id, t.attempt]), [[t2!.task_id, 1]]);
    const tasks = await tasksOf(j);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    assert.equal(byId.get(t0!.task_id)!.status, 'completed');
    assert.deepEqual(byId.get(t0!.task_id)!.result, { ok: 0 });
    assert.equal(byId.get(t1!.task_id)!.status, 'running', 'the stale report left it as the start report made it');
    assert.equal(byId.get(t2!.task_id)!.status, 'preparing');
    assert.deepEqual(byId.get(t2!.task_id)!.attempts.map((a) => a.attempt), [1], 'the handed-back attempt left no history row');
    assert.deepEqual(byId.get(t0!.task_id)!.attempts.map((a) => [a.attempt, a.exit_code, a.finished_at !== null]), [[1, 0, true]]);
    const events = await eventsOf(j);
    const statuses = events.filter((e) => e.type === 'task.status' && e.data.task_id === t0!.task_id).map((e) => e.data.status);
    assert.deepEqual(statuses, ['preparing', 'running', 'completed']);
    assert.ok(events.some((e) => e.type === 'task.progress' && e.data.task_id === t2!.task_id && e.data.message === 'half'));
  });

  it('ends the same task twice in one batch only once (the second report is stale)', async () => {
    await create(1);
    const [t] = await lease(1);
    const { ended: results } = await store.reportAndLease({ started: [], live: [], ended: [ended(t!, 'succeeded'), ended(t!, 'failed')] },
      { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 0 });
    assert.deepEqual(results.map((r) => (r.ok ? r.status : r.code)), ['completed', 'lease_mismatch']);
  });

  it('cancels a job of 12,000 queued tasks in one transaction, with an event for each (events go in chunks)', async () => {
    const j = await create(12_000);
    const result = await store.cancelJob(j, 'too many');
    assert.equal(result.cancelled_tasks, 12_000);
    assert.equal(await statusOf(j), 'cancelled');
    const events = await eventsOf(j);
    assert.equal(events.filter((e) => e.type === 'task.status' && e.data.status === 'cancelled').length, 12_000);
  });

  it('a submit whose tasks all went to reserved slots wakes no worker; one that left tasks queued does', async () => {
    let wakes = 0;
    const off = store.onWork(() => { wakes += 1; });
    try {
      const direct = { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 2 };
      const all = await store.createJobs([job(2)], [direct]);
      assert.equal(all.leased.flat().length, 2);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(wakes, 0, 'every new task already had its worker');
      const some = await store.createJobs([job(3)], [direct]);
      assert.equal(some.leased.flat().length, 2);
      await new Promise((r) => setTimeout(r, 50));
      assert.ok(wakes >= 1, 'a task left queued wakes the workers');
    } finally {
      off();
    }
  });

  it('writes a lease\'s events after those of the reports before it, the same on each store', async () => {
    const direct = { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 1 };
    const created = await store.createJobs([job(2)], [direct]);
    const j = (created.outcomes[0] as CreateOutcome).job_id;
    const t0 = created.leased[0]![0];
    const { leased: [t1] } = await store.reportAndLease({
      started: [{ task_id: t0!.task_id, attempt: 1, lease_token: t0!.lease_token, started_at: new Date().toISOString(), node: worker.node }],
      live: [], ended: [ended(t0!, 'succeeded')],
    }, direct);
    const events = await eventsOf(j);
    assert.deepEqual(events.map((e) => [e.type, e.data.status ?? null, e.data.task_id ?? null]), [
      ['job.created', null, null],
      ['job.status', 'running', null],
      ['task.status', 'preparing', t0!.task_id],
      ['task.status', 'running', t0!.task_id],
      ['task.status', 'completed', t0!.task_id],
      ['task.status', 'preparing', t1!.task_id],
    ]);
    const reason = `preparing runtime on ${worker.node}`;
    assert.deepEqual(events[1]!.data, { job_id: j, status: 'running', status_reason: reason });
    assert.deepEqual(events[5]!.data, { job_id: j, task_id: t1!.task_id, index: 1, status: 'preparing', attempt: 1, node: worker.node });
    assert.deepEqual([events[1]!.project_id, events[5]!.account_id, events[5]!.job_id], [project.id, accountId, j]);
  });

  it('stores each job of a batch as it was given, whether a column varies across the batch or not', async () => {
    const a = { ...job(2, 5), meta: { a: 1 }, env: { X: '1' }, queue_timeout_s: 60 };
    const b = { ...job(1, 5), meta: null, env: { X: '1' }, queue_timeout_s: null };
    const c = { ...job(3, -2), meta: 'm', env: {}, queue_timeout_s: null };
    const { outcomes } = await store.createJobs([a, b, c]);
    const ids = outcomes.map((o) => (o as CreateOutcome).job_id);
    const read = await Promise.all(ids.map((id) => store.getJob(accountId, id)));
    assert.deepEqual(read.map((r) => [r!.priority, r!.meta, r!.env, r!.queue_timeout_s, r!.tasks_total, r!.counts.queued]),
      [[5, { a: 1 }, { X: '1' }, 60, 2, 2], [5, null, { X: '1' }, null, 1, 1], [-2, 'm', {}, null, 3, 3]]);
    const tasks = await tasksOf(ids[2]!);
    assert.deepEqual(tasks.map((t) => [t.index, t.payload, t.status]), [[0, { index: 0 }, 'queued'], [1, { index: 1 }, 'queued'], [2, { index: 2 }, 'queued']]);
  });

  it('creates nothing when a project changed since its jobs were planned from it (project_env), and says stale', async () => {
    const direct = { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 1 };
    const countJobs = async () => (await store.listJobs(accountId, { projectId: project.id }, { limit: 100, cursor: null })).items.length;
    const planned = { ...job(1), project_env: {} };
    const fine = await store.createJobs([planned]);
    assert.equal(fine.stale, undefined);
    assert.equal(fine.outcomes.length, 1, 'the project is as planned: created');
    await store.updateProject(project, { env: { A: '1' } });
    try {
      const before = await countJobs();
      const stale = await store.createJobs([{ ...job(1), project_env: {} }, job(2)], [direct]);
      assert.equal(stale.stale, true);
      assert.deepEqual(stale.outcomes, []);
      assert.equal(stale.leased.length, 1, 'one answer per direct request');
      const keyed = { ...job(1), project_env: {}, idempotency: { key: 'stale-key', request_hash: 'h1' } };
      assert.equal((await store.createJobs([keyed])).stale, true, 'in a transaction too (a job with an idempotency key)');
      assert.equal(await countJobs(), before, 'nothing of either batch stayed');
      const replanned = await store.createJobs([{ ...keyed, project_env: { A: '1' } }]);
      assert.equal((replanned.outcomes[0] as CreateOutcome).replayed, false, 'the key was not kept by the stale batch');
    } finally {
      project = await store.updateProject(project, { env: {} });
    }
  });

  it('writes the job.created events of a batch in submit order, after its jobs (and their tasks)', async () => {
    const { outcomes } = await store.createJobs([job(1), job(2), job(3)]);
    const ids = outcomes.map((o) => (o as CreateOutcome).job_id);
    await store.latestEventId();
    const created = [];
    for (const id of ids) created.push(...(await eventsOf(id)).filter((e) => e.type === 'job.created'));
    assert.deepEqual(created.map((e) => e.data.job_id), ids, 'one each');
    assert.deepEqual(created.map((e) => e.id), [...created.map((e) => e.id)].sort((a, b) => a - b), 'in submit order');
    assert.deepEqual(created.map((e) => e.data.tasks_total), [1, 2, 3]);
    for (const id of ids) assert.equal((await tasksOf(id)).length, created.find((e) => e.data.job_id === id)!.data.tasks_total);
  });
  it('deleting a project removes its jobs with their tasks and attempts', async () => {
    const gone = await store.createProject(accountId, { name: 'gone', remote_dir: null, description: null, env: {} });
    const { revision: rev } = await store.publishRevision(gone, {
      content_hash: 'sha256:bb', tarball_sha256: 'b'.repeat(64), size_bytes: 10, files: [], manifest: {}, manifest_warnings: [],
    }, 10);
    const { outcomes } = await store.createJobs([{ ...job(1), project_id: gone.id, project: gone.name, revision_id: rev.id, content_hash: rev.content_hash }]);
    const jobId = (outcomes[0] as CreateOutcome).job_id;
    const [t] = await lease(1);
    assert.equal(t!.job_id, jobId);
    await store.reportAndLease({ started: [], live: [], ended: [ended(t!, 'succeeded')] }, { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 0 });
    assert.equal(await statusOf(jobId), 'completed');
    await store.deleteProject(gone);
    const conn = await connect({ databaseUrl: db.url, sqlitePath: join(dir, 'db.sqlite') });
    try {
      for (const table of ['attempts', 'tasks', 'jobs'] as const) {
        const column = table === 'jobs' ? 'id' : 'job_id';
        const rows = await conn.db.selectFrom(table).select(column).where(column, '=', jobId).execute();
        assert.equal(rows.length, 0, `${table} of the deleted project's job`);
      }
    } finally {
      await conn.close();
    }
  });

  // PostgreSQL only: SQLite runs one write transaction at a time, so no job can start during cancel-queued.
  if (storeKind() === 'postgres') it('cancel-queued passes over a job that started while it ran, and asks no running task to stop', async () => {
    const a = await create(1);
    const b = await create(1);
    const conn = await connect({ databaseUrl: db.url, sqlitePath: join(dir, 'db.sqlite') });
    try {
      // Hold a's task: cancel-queued lists a and b as queued, then waits on a's task...
      const blocker = await conn.pool!.connect();
      await blocker.query('begin');
      await blocker.query('select id from tasks where job_id = $1 for update', [a]);
      const cancelling = store.cancelQueued(project);
      await new Promise((resolve) => setTimeout(resolve, 300));
      // ...while a worker's lease (skipping the locked task) starts b and commits.
      const [leased] = await lease(1);
      assert.equal(leased?.job_id, b);
      await blocker.query('commit');
      blocker.release();
      assert.deepEqual(await cancelling, { cancelled_jobs: 1, cancelled_tasks: 1 });
      assert.equal(await statusOf(a), 'cancelled');
      assert.equal(await statusOf(b), 'running');
      const beat = await store.heartbeat(worker.id, [{ task_id: leased!.task_id, lease_token: leased!.lease_token }]);
      assert.deepEqual(beat.cancel, [], 'the task that started is not asked to stop');
      await store.reportAndLease({ started: [], live: [], ended: [ended(leased!, 'succeeded')] }, { workerId: worker.id, node: worker.node, profile: 'cpu', slots: 0 });
      assert.equal(await statusOf(b), 'completed', 'its result stands');
    } finally {
      await conn.close();
    }
  });

  // PostgreSQL only: on SQLite the read and the claim of a key run in the one write transaction.
  if (storeKind() === 'postgres') it('a submit whose idempotency key another transaction is inserting waits for it and replays its job', async () => {
    const conn = await connect({ databaseUrl: db.url, sqlitePath: join(dir, 'db.sqlite') });
    try {
      const other = await conn.pool!.connect();
      await other.query('begin');
      await other.query('insert into idempotency_keys (account_id, key, request_hash, job_id, created_at) values ($1, $2, $3, $4, $5)',
        [accountId, 'k-race', 'hash-1', 'job_other', new Date().toISOString()]);
      const same = store.createJobs([{ ...job(1), idempotency: { key: 'k-race', request_hash: 'hash-1' } }]);
      const differs = store.createJobs([{ ...job(1), idempotency: { key: 'k-race', request_hash: 'hash-2' } }]);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await other.query('commit');
      other.release();
      const replay = (await same).outcomes[0] as CreateOutcome;
      assert.equal(replay.job_id, 'job_other');
      assert.equal(replay.replayed, true);
      const conflict = (await differs).outcomes[0];
      assert.ok(conflict instanceof Error && (conflict as { code?: string }).code === 'idempotency_conflict', String(conflict));
    } finally {
      await conn.close();
    }
  });
});
