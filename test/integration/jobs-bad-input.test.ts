/**
 * Bad input to the job API gets a clear 4xx, never a 5xx, a crash or a leak (SPEC §2, §6), and what a
 * job shows is what happened. Each case here was found by an adversarial review of a running server;
 * every one of them failed before its fix.
 */
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { get } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { pushFixture, submit, tasks, waitJob } from '../helpers/jobs.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

/** A JSON value of `depth` nested arrays around 1 (as text: JSON.stringify itself overflows the stack at ~5,000). */
const nested = (depth: number): string => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

describe('jobs API: bad input', () => {
  let srv: TestServer;
  let acc: TestAccount;
  const P = 'bad-input';
  const post = (json: unknown, headers: Record<string, string> = {}) => call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json, headers });
  /** Sends JSON text as it is (for bodies built as text). */
  const send = (method: string, path: string, text: string) =>
    call(srv.url, method, path, { token: acc.member, body: text, headers: { 'content-type': 'application/json' } });

  before(async () => {
    srv = await startTestServer({ COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '4', COMPUTALOT_HEARTBEAT_MS: '300' });
    acc = await makeAccount(srv.url, 'bad-input-test');
    await pushFixture(srv.url, acc.member, P);
  });
  after(() => srv.stop());

  it('refuses a body nested deeper than 128 levels with 422 and the path, on submit, in a batch, and in KV', async () => {
    const job = (payload: string) => `{"project": "${P}", "runner_command": ["true"], "payload": {"a": ${payload}}}`;
    const deep = await send('POST', '/api/v1/jobs', job(nested(200)));
    assert.equal(deep.status, 422, deep.text);
    assert.equal(deep.body.error.code, 'validation_failed');
    const [problem] = deep.body.error.details.problems;
    assert.match(problem.path, /^\/payload\/a(\/0)+$/);
    assert.match(problem.message, /nested more than 128 levels/);
    // 125 arrays under the body and payload objects: 127 levels, accepted.
    assert.equal((await send('POST', '/api/v1/jobs', job(nested(125)))).status, 201);

    const batch = await send('POST', '/api/v1/jobs/batch', `{"jobs": [{"project": "${P}", "runner_command": ["true"]}, {"project": "${P}", "runner_command": ["true"], "meta": ${nested(5000)}}]}`);
    // The whole body is refused at the door (it is one JSON document): 422, not a 500 for every job.
    assert.equal(batch.status, 422, batch.text);
    assert.match(batch.body.error.details.problems[0].path, /^\/jobs\/1\/meta\/0/);

    const kv = await send('PUT', `/api/v1/projects/${P}/kv/deep`, nested(5000));
    assert.equal(kv.status, 422, kv.text);
    assert.equal((await call(srv.url, 'GET', '/health', { token: null })).status, 200);
  });

  it('answers a JSON body sent as text/plain with 415, naming the Content-Type to send', async () => {
    const res = await post(undefined, {});
    assert.equal(res.status, 422, 'no body at all is still a 422: the job needs one');
    const plain = await call(srv.url, 'POST', '/api/v1/jobs', {
      token: acc.member, body: JSON.stringify({ project: P }), headers: { 'content-type': 'text/plain' },
    });
    assert.equal(plain.status, 415, plain.text);
    assert.equal(plain.body.error.code, 'unsupported_media_type');
    assert.match(plain.body.error.message, /Content-Type: application\/json/);
  });

  it('refuses a fan-out whose task payloads would come to over 64 MiB (413), before building any', async () => {
    const big = 'x'.repeat(100 * 1024);
    const res = await post({ project: P, runner_command: ['true'], payload: { blob: big }, fan_out: { items: Array.from({ length: 1000 }, (_, i) => i) } });
    assert.equal(res.status, 413, res.text);
    assert.equal(res.body.error.code, 'job_too_large');
    assert.match(res.body.error.message, /1,000 tasks/);
    assert.match(res.body.error.message, /64\.0 MiB/);
    const sweep = await post({ project: P, type: 'sweep', runner_command: ['true'], payload: { blob: big }, sweep: { parameters: { a: Array.from({ length: 1000 }, (_, i) => i) } } });
    assert.equal(sweep.status, 413, sweep.text);
    // The fanned-out array itself is split among the tasks, not copied: a large `by` array is fine.
    const byKey = await post({ project: P, runner_command: ['true'], payload: { xs: Array.from({ length: 2_000 }, () => 'y'.repeat(1_000)) }, fan_out: { by: 'xs' }, queue_timeout_s: 1 });
    assert.equal(byKey.status, 201, byKey.text);
    await call(srv.url, 'POST', `/api/v1/jobs/${byKey.body.id}/cancel`, { token: acc.member });
  });

  it('refuses commands and env the kernel would refuse, at their paths, instead of failing three attempts', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ runner_command: [''] }, '/runner_command/0'],
      [{ runner_command: ['python3\u0000', 'x'] }, '/runner_command/0'],
      [{ runner_command: ['true'], env: { A: 'x\u0000y' } }, '/env/A'],
      [{ runner_command: ['true'], env: { A: 'a'.repeat(40_000) } }, '/env/A'],
      [{ runner_command: ['true'], env: Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`V${i}`, 'v'.repeat(30_000)])) }, '/env'],
      [{ runner_command: ['echo', ...Array.from({ length: 5 }, () => 'a'.repeat(30_000))] }, '/runner_command'],
      [{ runner_command: ['true'], env: [] }, '/env'],
      [{ runner_command: ['true'], meta: { blob: 'm'.repeat(70 * 1024) } }, '/meta'],
      [{ type: 'benchmark', runner_command: ['true'], strategies: { '': {} } }, '/strategies/'],
    ];
    for (const [body, path] of cases) {
      const res = await post({ project: P, ...body });
      assert.equal(res.status, 422, `${path}: ${res.text.slice(0, 300)}`);
      const paths = res.body.error.details.problems.map((p: { path: string }) => p.path);
      assert.ok(paths.includes(path), `${path} in ${JSON.stringify(paths)}`);
    }
    const env = await post({ project: P, runner_command: ['true'], env: [] });
    assert.match(env.body.error.message, /must be an object of variables/);
  });

  it('holds the Idempotency-Key header to the body key\'s rules', async () => {
    const body = { project: P, runner_command: ['true'], queue_timeout_s: 1 };
    assert.equal((await post(body, { 'idempotency-key': '' })).status, 400);
    assert.equal((await post(body, { 'idempotency-key': 'k'.repeat(201) })).status, 400);
    const both = await post({ ...body, idempotency_key: 'in-body' }, { 'idempotency-key': 'in-header' });
    assert.equal(both.status, 400, both.text);
    assert.match(both.body.error.message, /differ/);
    assert.equal((await post({ ...body, idempotency_key: 'same' }, { 'idempotency-key': 'same' })).status, 201);
    const batch = await call(srv.url, 'POST', '/api/v1/jobs/batch', { token: acc.member, json: { jobs: [body] }, headers: { 'idempotency-key': 'b1' } });
    assert.equal(batch.status, 400, batch.text);
    assert.match(batch.body.error.message, /each job of a batch its own idempotency_key/);
  });

  it('names the allowed values of a bad status filter', async () => {
    const res = await call(srv.url, 'GET', '/api/v1/jobs?status=bogus', { token: acc.member });
    assert.equal(res.status, 400);
    assert.match(res.body.error.message, /must be one of "queued", "running"/);
  });

  it('pages a job\'s tasks 50 at a time by default (SPEC §2 lists)', async () => {
    const job = await submit(srv.url, acc.member, { project: P, runner_command: ['true'], fan_out: { items: Array.from({ length: 60 }, (_, i) => i) } });
    await waitJob(srv.url, acc.member, job.id);
    const first = await call(srv.url, 'GET', `/api/v1/jobs/${job.id}/tasks`, { token: acc.member });
    assert.equal(first.body.tasks.length, 50);
    assert.ok(first.body.next_cursor);
    const rest = await call(srv.url, 'GET', `/api/v1/jobs/${job.id}/tasks?cursor=${encodeURIComponent(first.body.next_cursor)}`, { token: acc.member });
    assert.deepEqual(rest.body.tasks.map((t: { index: number }) => t.index), Array.from({ length: 10 }, (_, i) => 50 + i));
    assert.equal(rest.body.next_cursor, null);
  });

  it('gives a job cancelled without failures no advice about failed tasks', async () => {
    const job = await submit(srv.url, acc.member, { project: P, runner_command: ['sleep', '30'], fan_out: { items: [1, 2] } });
    await waitJob(srv.url, acc.member, job.id, (j) => j.tasks.running > 0);
    await call(srv.url, 'POST', `/api/v1/jobs/${job.id}/cancel`, { token: acc.member });
    const done = await waitJob(srv.url, acc.member, job.id);
    assert.equal(done.status, 'cancelled');
    assert.equal(done.recommended_action, null);
    const failing = await submit(srv.url, acc.member, { project: P, runner_command: ['false'], retries: { max_attempts: 1 } });
    assert.match((await waitJob(srv.url, acc.member, failing.id)).recommended_action, /each failed task's error/);
  });

  it('names the signal that killed a task, and shows a running attempt\'s start', async () => {
    const killed = await submit(srv.url, acc.member, { project: P, runner_command: ['sh', '-c', 'kill -SEGV $$'], retries: { max_attempts: 1 } });
    await waitJob(srv.url, acc.member, killed.id);
    const [task] = await tasks(srv.url, acc.member, killed.id);
    assert.equal(task.error?.code, 'killed_by_signal', JSON.stringify(task));
    assert.match(task.error.message, /SIGSEGV/);
    assert.equal(task.attempts[0].error?.code, 'killed_by_signal');

    const running = await submit(srv.url, acc.member, { project: P, runner_command: ['sleep', '30'] });
    await waitJob(srv.url, acc.member, running.id, (j) => j.tasks.running > 0);
    const [live] = await tasks(srv.url, acc.member, running.id);
    assert.equal(live.attempts.length, 1);
    assert.equal(live.attempts[0].started_at, live.started_at, 'the running attempt shows its start');
    assert.ok(live.started_at);
    await call(srv.url, 'POST', `/api/v1/jobs/${running.id}/cancel`, { token: acc.member });
    await waitJob(srv.url, acc.member, running.id);
  });

  it('closes an output file when its download is abandoned', async () => {
    const job = await submit(srv.url, acc.member, { project: P, runner_command: ['sh', '-c', 'head -c 20000000 /dev/zero | tr "\\0" a'], fan_out: { items: [1, 2] } });
    assert.equal((await waitJob(srv.url, acc.member, job.id)).status, 'completed');
    const outputsOpen = () => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).includes(`/outputs/${job.id}/`);
      } catch {
        return false;
      }
    }).length;
    for (let i = 0; i < 5; i += 1) {
      await new Promise<void>((resolve, reject) => {
        const req = get(`${srv.url}/api/v1/jobs/${job.id}/output`, { headers: { authorization: `Bearer ${acc.member}` } }, (res) => {
          res.once('data', () => { req.destroy(); resolve(); });
        });
        req.on('error', (err) => (req.destroyed ? resolve() : reject(err)));
      });
    }
    // A request whose client left after the first line (the task header) may still open its file an
    // instant later and close it on noticing: the count must reach 0 and stay there (seen once: 0, then 1
    // as the open landed between the poll and the assert), within the deadline.
    const deadline = Date.now() + 5_000;
    for (let zeros = 0; zeros < 5 && Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
      zeros = outputsOpen() === 0 ? zeros + 1 : 0;
    }
    assert.equal(outputsOpen(), 0, 'no output file stays open after its client went away');
    // A whole download still works.
    const whole = await call(srv.url, 'GET', `/api/v1/jobs/${job.id}/output`, { token: acc.member });
    assert.equal(whole.status, 200);
    assert.ok(whole.text.length >= 40_000_000);
  });
});
