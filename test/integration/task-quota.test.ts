/**
 * The queued_tasks quota (SPEC §11): a submit that would take the account's queued tasks past its limit
 * is 429 quota_exceeded with the limit and the use; a batch refuses only the jobs that do; cancelling
 * queued work frees it up; an admin's change applies within a second. No workers: tasks stay queued.
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
