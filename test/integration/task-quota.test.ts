/**
 * Task quotas (SPEC §11). queued_tasks: a submit that would take the account's queued tasks past its
 * limit is 429 quota_exceeded with the limit and the use; a batch refuses only the jobs that do; cancelling
 * queued work frees it up; an admin's change applies within a second (no workers: tasks stay queued).
 * running_tasks: the lease keeps the account's leased tasks to the cap, the others wait and say why.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { pushFixture } from '../helpers/jobs.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

describe('the queued_tasks quota', () => {
  let srv: TestServer;
  let acc: TestAccount;
  let other: TestAccount;
  const items = (n: number) => ({ project: 'p', payload: { mode: 'echo' }, fan_out: { items: Array.from({ length: n }, (_, i) => i) } });
  const setQuota = async (id: string, queued: number | null) => {
    const res = await call(srv.url, 'PUT', `/api/v1/admin/accounts/${id}/quotas`, { json: { queued_tasks: queued } });
    assert.equal(res.status, 200, res.text);
    await new Promise((r) => setTimeout(r, 1_100)); // quotas are read once a second
  };

  before(async () => {
    srv = await startTestServer();
    acc = await makeAccount(srv.url, 'quota');
    other = await makeAccount(srv.url, 'roomy');
    await pushFixture(srv.url, acc.member, 'p');
    await pushFixture(srv.url, other.member, 'p');
    await setQuota(acc.id, 3);
  });
  after(() => srv.stop());

  it('refuses the submit that would pass the limit, saying the limit and what is queued', async () => {
    assert.equal((await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: items(2) })).status, 201);
    const over = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: items(2) });
    assert.equal(over.status, 429);
    assert.equal(over.body.error.code, 'quota_exceeded');
    assert.deepEqual(over.body.error.details, { quota: 'queued_tasks', limit: 3, used: 2 });
    assert.match(over.body.error.message, /queued_tasks.*limit 3, in use 2/);
    assert.equal((await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: items(1) })).status, 201, 'one more fits');
    assert.equal((await call(srv.url, 'POST', '/api/v1/jobs', { token: other.member, json: items(5) })).status, 201, 'another account has its own');
  });

  it('refuses only the jobs of a batch that do not fit, in order', async () => {
    await call(srv.url, 'PUT', '/api/v1/projects/p/cancel-queued', { token: acc.member });
    const res = await call(srv.url, 'POST', '/api/v1/jobs/batch', { token: acc.member, json: { jobs: [items(2), items(2), items(1)] } });
    assert.equal(res.status, 200);
    const [a, b, c] = res.body.jobs;
    assert.ok(a.id && c.id, JSON.stringify(res.body));
    assert.equal(b.error.code, 'quota_exceeded');
    assert.deepEqual(b.error.details, { quota: 'queued_tasks', limit: 3, used: 2 });
  });

  it('frees up when queued work is cancelled, and follows an admin\'s change within a second', async () => {
    assert.equal((await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: items(1) })).status, 429);
    await call(srv.url, 'PUT', '/api/v1/projects/p/cancel-queued', { token: acc.member });
    assert.equal((await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: items(3) })).status, 201);
    await setQuota(acc.id, null);
    assert.equal((await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: items(10) })).status, 201, 'unlimited again');
  });
});

describe('the running_tasks quota', () => {
  let srv: TestServer;
  let acc: TestAccount;
  let other: TestAccount;

  before(async () => {
    srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '4' });
    acc = await makeAccount(srv.url, 'capped');
    other = await makeAccount(srv.url, 'uncapped');
    await pushFixture(srv.url, acc.member, 'p');
    await pushFixture(srv.url, other.member, 'p');
    const res = await call(srv.url, 'PUT', `/api/v1/admin/accounts/${acc.id}/quotas`, { json: { running_tasks: 1 } });
    assert.equal(res.status, 200, res.text);
    await new Promise((r) => setTimeout(r, 1_100)); // quotas are read once a second (the status reason)
  });
  after(() => srv.stop());

  it('runs an account\'s tasks one at a time at a cap of 1, says so while they wait, and lets another account\'s run alongside', async () => {
    const sleep = { project: 'p', payload: { mode: 'sleep', seconds: 0.4 } };
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) ids.push((await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: sleep })).body.id);
    const others: string[] = [];
    for (let i = 0; i < 2; i += 1) others.push((await call(srv.url, 'POST', '/api/v1/jobs', { token: other.member, json: sleep })).body.id);
    let maxOther = 0;
    const reasons = new Set<string>();
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const jobs = await Promise.all(ids.map(async (id) => (await call(srv.url, 'GET', `/api/v1/jobs/${id}`, { token: acc.member })).body));
      const otherJobs = await Promise.all(others.map(async (id) => (await call(srv.url, 'GET', `/api/v1/jobs/${id}`, { token: other.member })).body));
      maxOther = Math.max(maxOther, otherJobs.reduce((n, j) => n + j.tasks.preparing + j.tasks.running, 0));
      for (const j of jobs) if (j.status === 'queued') reasons.add(j.status_reason);
      if ([...jobs, ...otherJobs].every((j) => j.status === 'completed')) break;
      await new Promise((r) => setTimeout(r, 30));
    }
    // One at a time, checked on the tasks' own times (polled job counts are reads of different jobs at
    // different moments, so one poll could see a task just ended and the one leased in its place): the
    // next task is leased only once the last one's end is committed, so it starts after that one finished.
    const runs = (await Promise.all(ids.map(async (id) => (await call(srv.url, 'GET', `/api/v1/jobs/${id}/tasks`, { token: acc.member })).body.tasks[0])))
      .map((t: { started_at: string; finished_at: string }) => ({ start: Date.parse(t.started_at), end: Date.parse(t.finished_at) }))
      .sort((a, b) => a.start - b.start);
    for (let i = 1; i < runs.length; i += 1) {
      assert.ok(runs[i]!.start >= runs[i - 1]!.end, `never more than one task of the capped account at a time: ${JSON.stringify(runs)}`);
    }
    assert.equal(maxOther, 2, 'the other account\'s tasks ran side by side');
    assert.ok([...reasons].some((r) => /running_tasks quota is in use \(1 of 1\)/.test(r)), [...reasons].join(' | '));
    for (const id of ids) assert.equal((await call(srv.url, 'GET', `/api/v1/jobs/${id}`, { token: acc.member })).body.status, 'completed');
  });
});
