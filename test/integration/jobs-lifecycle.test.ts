/**
 * Job lifecycles that cross processes and streams: a worker killed mid-task (its lease expires, the task
 * is retried on another worker and completes once), the job stream from job.created to job.completed,
 * cancel-queued and project delete acting on real jobs.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { storeKind, testDatabase } from '../helpers/db.js';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { pushFixture, submit, tasks, waitJob } from '../helpers/jobs.js';
import { ADMIN_TOKEN, spawnServer, startTestServer, type TestServer } from '../helpers/server.js';
import { readStream } from '../helpers/sse.js';
import { cgroupSkip } from '../helpers/processes.js';
import { loadConfig } from '../../src/config.js';

describe('a worker killed mid-task', () => {
  it('loses its lease; the task is retried on another worker and completes once', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'computalot-kill-'));
    const db = await testDatabase();
    const env = {
      COMPUTALOT_DATA_DIR: dataDir, COMPUTALOT_ADMIN_TOKEN: ADMIN_TOKEN, COMPUTALOT_RUNTIME: 'process',
      COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_LEASE_S: '2', ...(db.url ? { DATABASE_URL: db.url } : {}),
    };
    let first = await spawnServer(env, 'node');
    try {
      const acc = await makeAccount(first.url, 'kill');
      await pushFixture(first.url, acc.member, 'p');
      const job = await submit(first.url, acc.member, { project: 'p', payload: { mode: 'sleep', seconds: 3 }, retries: { max_attempts: 3, backoff_s: 0 } });
      await waitJob(first.url, acc.member, job.id, (j) => j.tasks.running === 1);
      process.kill(-first.child.pid!, 'SIGKILL');
      await first.stop();
      first = await spawnServer(env, 'node');
      const done = await waitJob(first.url, acc.member, job.id);
      const [task] = await tasks(first.url, acc.member, job.id);
      assert.equal(done.status, 'completed', JSON.stringify(task));
      assert.equal(task.attempts.length, 2);
      assert.equal(task.attempts[0].node, 'node-1');
      assert.equal(task.attempts[0].error.code, 'worker_lost');
      assert.equal(task.attempts[1].node, 'node-2');
      assert.equal(task.attempts[1].exit_code, 0);
      assert.equal(task.result.attempt, 2);
      const events = await readStream(`${first.url}/api/v1/jobs/${job.id}/stream`, acc.member);
      assert.equal(events.filter((e) => e.event === 'job.completed').length, 1);
      assert.equal(events.filter((e) => e.event === 'task.status' && e.data.status === 'completed').length, 1);
    } finally {
      await first.stop();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('job streams, cancel-queued and delete', () => {
  let srv: TestServer;
  let acc: TestAccount;
  before(async () => {
    srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '1' });
    acc = await makeAccount(srv.url, 'life');
    await pushFixture(srv.url, acc.member, 'p');
  });
  after(() => srv.stop());

  it('streams job.created … job.completed in order and ends; a late client gets the replay', async () => {
    const job = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'square' }, fan_out: { items: [1, 2] } });
    const live = await readStream(`${srv.url}/api/v1/jobs/${job.id}/stream`, acc.member);
    const types = live.map((e) => e.event);
    assert.equal(types[0], 'job.created');
    assert.equal(types[types.length - 1], 'job.completed');
    assert.ok(types.includes('job.status'));
    assert.equal(types.filter((t) => t === 'task.status').length >= 4, true, 'preparing/running/completed per task');
    const ids = live.map((e) => e.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'in id order');
    const late = await readStream(`${srv.url}/api/v1/jobs/${job.id}/stream`, acc.member);
    assert.deepEqual(late.map((e) => e.id), ids);
    const resumed = await readStream(`${srv.url}/api/v1/jobs/${job.id}/stream`, acc.member, { 'last-event-id': String(ids[1]) });
    assert.deepEqual(resumed.map((e) => e.id), ids.slice(2));
  });

  // PostgreSQL only (registered in its pass): SQLite commits event ids in order, so no gap can hold a stream.
  if (storeKind() === 'postgres') it('a finished job\'s stream held below an open transaction elsewhere waits, then ends at job.completed', async () => {
    const job = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'square' }, fan_out: { items: [1] } });
    assert.equal((await waitJob(srv.url, acc.member, job.id)).status, 'completed');
    // An uncommitted event id below a new one: the high-water mark waits at it, and settling gives up
    // after 2 s (a long transaction anywhere in the cluster does the same, e.g. another test's).
    const { default: pg } = await import('pg');
    const slow = new pg.Client(srv.databaseUrl!);
    await slow.connect();
    try {
      await slow.query('begin');
      await slow.query('select pg_current_xact_id()');
      await slow.query(`insert into events (account_id, type, data, created_at) values ('acc', 't', '{}', now()::text)`);
      const again = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'square' }, fan_out: { items: [2] } });
      assert.equal((await waitJob(srv.url, acc.member, again.id)).status, 'completed');
      let ended = false;
      const reading = readStream(`${srv.url}/api/v1/jobs/${again.id}/stream`, acc.member).finally(() => { ended = true; });
      await new Promise((r) => setTimeout(r, 2_500));
      assert.equal(ended, false, 'the stream is still open, not ended empty');
      await slow.query('rollback');
      const types = (await reading).map((e) => e.event);
      assert.equal(types[0], 'job.created');
      assert.equal(types[types.length - 1], 'job.completed');
    } finally {
      await slow.end();
    }
  });

  it('cancel-queued cancels jobs that have not started, and delete answers 409 while jobs are active', async () => {
    const running = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'sleep', seconds: 2 } });
    await waitJob(srv.url, acc.member, running.id, (j) => j.status === 'running');
    const queued = [await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'echo' } }), await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'square' }, fan_out: { items: [1, 2, 3] } })];
    const del = await call(srv.url, 'DELETE', '/api/v1/projects/p', { token: acc.member });
    assert.equal(del.status, 409);
    assert.equal(del.body.error.code, 'project_has_active_jobs');
    const status = await call(srv.url, 'GET', '/api/v1/projects/p/status', { token: acc.member });
    assert.deepEqual(status.body.jobs, { queued: 2, running: 1 });
    const cq = await call(srv.url, 'PUT', '/api/v1/projects/p/cancel-queued', { token: acc.member });
    assert.deepEqual(cq.body, { cancelled_jobs: 2, cancelled_tasks: 4 });
    for (const q of queued) assert.equal((await waitJob(srv.url, acc.member, q.id)).status, 'cancelled');
    assert.equal((await waitJob(srv.url, acc.member, running.id)).status, 'completed');
    assert.equal((await call(srv.url, 'DELETE', '/api/v1/projects/p', { token: acc.member })).status, 204);
  });
});

describe('jobs without a worker', () => {
  it('wait with a reason that says no worker is online, and a gpu job names its profile', async () => {
    const srv = await startTestServer();
    try {
      const acc = await makeAccount(srv.url, 'idle');
      await pushFixture(srv.url, acc.member, 'p');
      const cpu = await submit(srv.url, acc.member, { project: 'p', payload: {} });
      const gpu = await submit(srv.url, acc.member, { project: 'p', payload: {}, profile: 'gpu' });
      const a = await call(srv.url, 'GET', `/api/v1/jobs/${cpu.id}`, { token: acc.member });
      const b = await call(srv.url, 'GET', `/api/v1/jobs/${gpu.id}`, { token: acc.member });
      assert.equal(a.body.status, 'queued');
      assert.equal(a.body.status_reason, 'waiting for a worker (none online)');
      assert.equal(b.body.status_reason, 'waiting for a worker with profile gpu (none online)');
    } finally {
      await srv.stop();
    }
  });
});

describe('/init with a real worker', () => {
  it('prepares the revision ahead of any job; a second /init finds it warm', async () => {
    const srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1' });
    try {
      const acc = await makeAccount(srv.url, 'init');
      await pushFixture(srv.url, acc.member, 'p');
      const before = await call(srv.url, 'GET', '/api/v1/projects/p/status', { token: acc.member });
      assert.equal(before.body.ready_for_jobs, false);
      assert.match(before.body.status_message, /no worker has prepared it yet, so the next job will cold-start \(or call \/init\)/);
      const init = await call(srv.url, 'POST', '/api/v1/projects/p/init', { token: acc.member, json: {} });
      assert.equal(init.status, 202);
      assert.equal(init.body.targeted_workers, 1);
      assert.equal(init.body.already_warm, 0);
      let details = await call(srv.url, 'GET', '/api/v1/projects/p/status/details', { token: acc.member });
      for (let i = 0; i < 200 && !details.body.ready_for_jobs; i += 1) {
        await new Promise((r) => setTimeout(r, 50));
        details = await call(srv.url, 'GET', '/api/v1/projects/p/status/details', { token: acc.member });
      }
      assert.equal(details.body.ready_for_jobs, true);
      assert.equal(details.body.nodes[0].state, 'warm');
      assert.ok(details.body.nodes[0].finished_at);
      const jobs = await call(srv.url, 'GET', '/api/v1/jobs', { token: acc.member });
      assert.equal(jobs.body.jobs.length, 0, 'no job was needed');
      const again = await call(srv.url, 'POST', '/api/v1/projects/p/init', { token: acc.member, json: {} });
      assert.deepEqual([again.body.targeted_workers, again.body.already_warm], [0, 1]);
    } finally {
      await srv.stop();
    }
  });
});

describe('the process runtime\'s helper', () => {
  it('is compiled and started when the embedded workers start, before any job', async () => {
    const srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1' });
    try {
      const bin = join(srv.dataDir, 'work', 'oci', 'bin');
      // The helper's binary, and a process running it (a child of this server): /proc/<pid>/exe names it.
      const running = async (): Promise<boolean> => {
        const names = await readdir(bin).catch(() => [] as string[]);
        const helper = names.find((name) => /^helper-[0-9a-f]{16}$/.test(name));
        if (!helper) return false;
        for (const pid of await readdir('/proc')) {
          if (/^\d+$/.test(pid) && await readlink(`/proc/${pid}/exe`).catch(() => '') === join(bin, helper)) return true;
        }
        return false;
      };
      let up = false;
      for (const until = Date.now() + 20_000; !up && Date.now() < until;) {
        up = await running();
        if (!up) await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(up, true, 'the helper runs with no job submitted');
    } finally {
      await srv.stop();
    }
  });

  // What the task itself sees: its own cgroup under the helper's (COMPUTALOT_TASK_CGROUPS=auto, on a host
  // that allows it), or the server's (off: an anchor keeps the tree instead).
  for (const setting of ['auto', 'off'] as const) {
    it(`COMPUTALOT_TASK_CGROUPS=${setting}: the task ${setting === 'auto' ? 'runs in a cgroup of its own' : 'stays in the server\'s cgroup'}`, { skip: setting === 'auto' && cgroupSkip() }, async () => {
      const srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_TASK_CGROUPS: setting });
      try {
        const acc = await makeAccount(srv.url, `cg${setting}`);
        await pushFixture(srv.url, acc.member, 'p');
        const job = await submit(srv.url, acc.member, {
          project: 'p', runner_command: ['sh', '-c', 'printf \'{"cgroup": "%s"}\\n\' "$(grep ^0:: /proc/self/cgroup)"'],
        });
        const done = await waitJob(srv.url, acc.member, job.id);
        assert.equal(done.status, 'completed', JSON.stringify(done));
        const results = await call(srv.url, 'GET', `/api/v1/results/${job.id}`, { token: acc.member });
        const cgroup = String(results.body.aggregate_result.cgroup);
        assert.match(cgroup, /^0::/);
        if (setting === 'auto') assert.match(cgroup, /\/computalot-helper-\d+\/t\d+$/);
        else assert.doesNotMatch(cgroup, /computalot-helper/);
      } finally {
        await srv.stop();
      }
    });
  }

  it('refuses a COMPUTALOT_TASK_CGROUPS it does not know, naming the allowed values', () => {
    assert.throws(() => loadConfig({ COMPUTALOT_TASK_CGROUPS: 'maybe' }), /COMPUTALOT_TASK_CGROUPS=maybe must be one of auto, off/);
  });
});

describe('queue order and queue timeouts', () => {
  it('fails tasks that did not start within queue_timeout_s, with the reason', async () => {
    const srv = await startTestServer();
    try {
      const acc = await makeAccount(srv.url, 'qt');
      await pushFixture(srv.url, acc.member, 'p');
      const job = await submit(srv.url, acc.member, { project: 'p', payload: {}, queue_timeout_s: 1 });
      const done = await waitJob(srv.url, acc.member, job.id, undefined, 20_000);
      assert.equal(done.status, 'failed');
      const [task] = await tasks(srv.url, acc.member, job.id);
      assert.equal(task.error.code, 'queue_timeout');
      assert.match(task.status_reason, /queue_timeout_s/);
      assert.equal(task.attempts.length, 0);
    } finally {
      await srv.stop();
    }
  });

  it('starts higher-priority tasks first', async () => {
    const srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '1' });
    try {
      const acc = await makeAccount(srv.url, 'prio');
      await pushFixture(srv.url, acc.member, 'p');
      const blocker = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'sleep', seconds: 1 } });
      await waitJob(srv.url, acc.member, blocker.id, (j) => j.status === 'running');
      const low = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'echo' }, priority: -5 });
      const high = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'echo' }, priority: 10 });
      const [l, h] = [await waitJob(srv.url, acc.member, low.id), await waitJob(srv.url, acc.member, high.id)];
      assert.ok(h.started_at <= l.started_at, `high started ${h.started_at}, low ${l.started_at}`);
      const [lt] = await tasks(srv.url, acc.member, low.id);
      const [ht] = await tasks(srv.url, acc.member, high.id);
      assert.ok(ht.started_at < lt.started_at, 'the high-priority task ran before the low one');
    } finally {
      await srv.stop();
    }
  });
});

describe('prefetch on a worker with one slot', () => {
  let srv: TestServer;
  let acc: TestAccount;
  before(async () => {
    srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '1' });
    acc = await makeAccount(srv.url, 'prefetch');
    await pushFixture(srv.url, acc.member, 'p');
  });
  after(() => srv.stop());

  it('holds short tasks ahead; once tasks run long, a held one goes back to the queue without spending its attempt', async () => {
    // Short tasks teach the worker that prefetching pays: the agent's average attempt must fall under its
    // 250 ms "short". The first attempt also starts the task helper, compiling it in a fresh data folder
    // (over a second on a loaded CI machine: the test flaked), so 20 quick `true` tasks decay that away.
    const quick = await submit(srv.url, acc.member, { project: 'p', runner_command: ['true'], fan_out: { items: Array.from({ length: 20 }, (_, i) => i) } });
    assert.equal((await waitJob(srv.url, acc.member, quick.id)).status, 'completed');
    // Long ones: the first runs, a second is held for the slot (its job is running), then handed back
    // when the first has run past a second, so an idle worker elsewhere could take it.
    const slow = await submit(srv.url, acc.member, { project: 'p', payload: { mode: 'sleep', seconds: 1.6 }, fan_out: { items: [1, 2] } });
    const done = await waitJob(srv.url, acc.member, slow.id, undefined, 30_000);
    assert.equal(done.status, 'completed');
    const events = await readStream(`${srv.url}/api/v1/jobs/${slow.id}/stream`, acc.member);
    const statuses = events.filter((e) => e.event === 'task.status').map((e) => e.data);
    const held = statuses.find((d) => d.status === 'preparing' && d.index === 1);
    assert.ok(held, 'the second task was leased while the first ran');
    assert.ok(statuses.some((d) => d.index === 1 && d.status === 'queued' && /handed back/.test(d.status_reason)), JSON.stringify(statuses));
    for (const task of await tasks(srv.url, acc.member, slow.id)) {
      assert.equal(task.status, 'completed');
      assert.equal(task.attempt, 1, 'a hand-back does not count as an attempt');
      assert.equal(task.attempts.length, 1);
    }
  });
});
