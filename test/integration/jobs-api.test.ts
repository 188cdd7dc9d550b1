/**
 * Jobs end to end on the process runtime (SPEC §6, §7): every job type, fan-out shapes, result quality,
 * timeouts and cancels that take the whole process tree, retries with checkpoints, idempotency, batches,
 * bad bodies. A real server with an embedded worker, a real database, real processes.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { storeKind } from '../helpers/db.js';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { alive, pushFixture, results, submit, tasks, waitJob } from '../helpers/jobs.js';
import { ROOT, startTestServer, type TestServer } from '../helpers/server.js';

describe('jobs API', () => {
  let srv: TestServer;
  let acc: TestAccount;
  const P = 'jobs';
  const job = (body: Record<string, unknown>) => submit(srv.url, acc.member, { project: P, ...body });
  const done = (id: string) => waitJob(srv.url, acc.member, id);

  before(async () => {
    srv = await startTestServer({
      COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '4', COMPUTALOT_HEARTBEAT_MS: '300',
    });
    acc = await makeAccount(srv.url, 'jobs-test');
    await pushFixture(srv.url, acc.member, P);
  });
  after(() => srv.stop());

  it('runs one task with the runner protocol and returns its result (quality 1)', async () => {
    const submitted = await job({ payload: { mode: 'echo', x: 1 }, meta: { run: 7 }, variant: 'a' });
    assert.equal(submitted.status === 'queued' || submitted.status === 'running', true);
    const finished = await done(submitted.id);
    assert.equal(finished.status, 'completed');
    assert.equal(finished.progress, 1);
    assert.deepEqual(finished.tasks, { queued: 0, preparing: 0, running: 0, completed: 1, failed: 0, cancelled: 0 });
    const r = await results(srv.url, acc.member, submitted.id);
    assert.equal(r.completeness, 1);
    assert.deepEqual(r.meta, { run: 7 });
    assert.equal(r.variant, 'a');
    const result = r.aggregate_result;
    assert.deepEqual(result.payload, { mode: 'echo', x: 1 });
    assert.equal(result.attempt, 1);
    assert.equal(result.env.GREETING, 'hello', 'the manifest env reaches the task');
    for (const name of ['COMPUTALOT_TASK_PAYLOAD', 'COMPUTALOT_RESULT_PATH', 'COMPUTALOT_PROGRESS_PATH', 'COMPUTALOT_SCRATCH_DIR', 'COMPUTALOT_JOB_ID', 'COMPUTALOT_TASK_ID', 'COMPUTALOT_TASK_INDEX', 'COMPUTALOT_TASK_COUNT', 'COMPUTALOT_ATTEMPT', 'COMPUTALOT_PROJECT', 'COMPUTALOT_CONTENT_HASH']) {
      assert.ok(result.env[name], `${name} is set`);
    }
    assert.equal(result.env.COMPUTALOT_JOB_ID, submitted.id);
    assert.equal(result.env.COMPUTALOT_CHECKPOINT_DIR, undefined, 'no checkpoint dir without checkpoint.enabled');
    assert.equal(r.results[0].result_quality, 1);
    assert.deepEqual(r.results[0].result_warnings, []);
    const [task] = await tasks(srv.url, acc.member, submitted.id);
    assert.equal(task.attempt, 1);
    assert.equal(task.attempts.length, 1);
    assert.equal(task.attempts[0].node, 'node-1');
    assert.equal(task.exit_code, 0);
    assert.ok(task.cold_start === null || typeof task.cold_start.fetch_ms === 'number');
  });

  it('falls back to the last JSON object line of stdout (0.5) and to no result (0)', async () => {
    const a = await job({ payload: { mode: 'stdout' } });
    const b = await job({ payload: { mode: 'none' } });
    const ra = await results(srv.url, acc.member, (await done(a.id)).id);
    const rb = await results(srv.url, acc.member, (await done(b.id)).id);
    assert.deepEqual(ra.results[0].result, { from: 'stdout' });
    assert.equal(ra.results[0].result_quality, 0.5);
    assert.deepEqual(ra.results[0].result_warnings, ['result_from_stdout']);
    assert.equal(rb.results[0].result, null);
    assert.equal(rb.results[0].result_quality, 0);
    assert.deepEqual(rb.results[0].result_warnings, ['no_result']);
    assert.equal(rb.status, 'completed', 'exit 0 without a result still completes');
  });

  it('finds the stdout result behind more than 64 KiB of log, and a result line longer than that', async () => {
    const script = (code: string) => ({ runner_command: ['python3', '-c', code] });
    const behind = await job(script("import json; print(json.dumps({'ok': 1})); print('noise line\\n' * 10000)"));
    const long = await job(script("import json; print('log'); print(json.dumps({'s': 'y' * 70000}))"));
    const rb = await results(srv.url, acc.member, (await done(behind.id)).id);
    assert.deepEqual(rb.results[0].result, { ok: 1 });
    assert.equal(rb.results[0].result_quality, 0.5);
    const rl = await results(srv.url, acc.member, (await done(long.id)).id);
    assert.equal(rl.results[0].result?.s?.length, 70_000);
    assert.deepEqual(rl.results[0].result_warnings, ['result_from_stdout']);
  });

  it('fans out by a payload key, with and without batch_size, results in task order', async () => {
    const plain = await done((await job({ payload: { mode: 'square', xs: [1, 2, 3, 4, 5] }, fan_out: { by: 'xs' } })).id);
    assert.equal(plain.status, 'completed');
    assert.equal(plain.tasks_total, 5);
    const r1 = await results(srv.url, acc.member, plain.id);
    assert.deepEqual(r1.results.map((x: any) => x.item), [1, 2, 3, 4, 5]);
    assert.deepEqual(r1.aggregate_result, [1, 4, 9, 16, 25].map((value) => ({ value })));
    const batched = await done((await job({ payload: { mode: 'square', xs: [1, 2, 3, 4, 5] }, fan_out: { by: 'xs' }, batch_size: 2 })).id);
    assert.equal(batched.status, 'completed');
    assert.equal(batched.tasks_total, 3);
    const r2 = await results(srv.url, acc.member, batched.id);
    assert.deepEqual(r2.results.map((x: any) => x.item), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(r2.aggregate_result, [[1, 4], [9, 16], [25]]);
  });

  it('fans out over items, with and without batch_size', async () => {
    const items = await done((await job({ payload: { mode: 'square' }, fan_out: { items: [3, 1, 2] } })).id);
    assert.equal(items.status, 'completed');
    const r = await results(srv.url, acc.member, items.id);
    assert.deepEqual(r.aggregate_result, [{ value: 9 }, { value: 1 }, { value: 4 }]);
    const batched = await done((await job({ payload: { mode: 'echo' }, fan_out: { items: [1, 2, 3] }, batch_size: 2 })).id);
    const rb = await results(srv.url, acc.member, batched.id);
    assert.deepEqual(rb.results.map((x: any) => x.result.payload.items), [[1, 2], [3]]);
  });

  it('runs a sweep and finds the best point', async () => {
    const sweep = await done((await job({
      type: 'sweep', payload: { mode: 'sweep' },
      sweep: { parameters: { lr: [0.01, 0.1, 1], depth: [1, 2] }, objective: { key: 'loss', goal: 'minimize' } },
    })).id);
    assert.equal(sweep.tasks_total, 6);
    const r = await results(srv.url, acc.member, sweep.id);
    assert.deepEqual(r.aggregate_result.best.params, { lr: 0.1, depth: 1 });
    assert.equal(r.aggregate_result.table.length, 6);
  });

  it('runs map_reduce: the reduce gets the map results in task order', async () => {
    const mr = await done((await job({
      type: 'map_reduce', payload: { mode: 'square' }, fan_out: { items: [1, 2, 3] },
      reduce: { payload: { mode: 'sum' } },
    })).id);
    assert.equal(mr.status, 'completed');
    assert.equal(mr.tasks_total, 4);
    const r = await results(srv.url, acc.member, mr.id);
    assert.deepEqual(r.aggregate_result, { total: 14 });
  });

  it('runs a benchmark and ranks the strategies', async () => {
    const b = await done((await job({
      type: 'benchmark', payload: { mode: 'bench' }, repeats: 2, objective: { key: 'score', goal: 'maximize' },
      strategies: { slow: { payload: { score: 1 } }, fast: { payload: { score: 5 } } },
    })).id);
    assert.equal(b.tasks_total, 4);
    const r = await results(srv.url, acc.member, b.id);
    assert.deepEqual(r.aggregate_result.ranking, ['fast', 'slow']);
  });

  it('fails a task on a non-zero exit after its attempts, with the exit code', async () => {
    const f = await done((await job({ payload: { mode: 'exit', code: 7 }, retries: { max_attempts: 2, backoff_s: 0 } })).id);
    assert.equal(f.status, 'failed');
    assert.equal(f.error.code, 'tasks_failed');
    const [task] = await tasks(srv.url, acc.member, f.id);
    assert.equal(task.exit_code, 7);
    assert.equal(task.attempts.length, 2);
    assert.equal(task.error.code, 'nonzero_exit');
    assert.match(task.output, /exiting with 7/);
    const output = await call(srv.url, 'GET', `/api/v1/jobs/${f.id}/output`, { token: acc.member });
    assert.match(output.text, /exiting with 7/);
  });

  it('retries a failed attempt, and the next attempt finds its checkpoint', async () => {
    const j = await done((await job({ payload: { mode: 'fail_once' }, checkpoint: { enabled: true }, retries: { max_attempts: 3, backoff_s: 0 } })).id);
    assert.equal(j.status, 'completed');
    const r = await results(srv.url, acc.member, j.id);
    assert.deepEqual(r.aggregate_result, { checkpoint: 'saved by attempt 1', attempt: 2 });
    const [task] = await tasks(srv.url, acc.member, j.id);
    assert.deepEqual(task.attempts.map((a: any) => a.exit_code), [3, 0]);
  });

  it('kills the whole process tree at the timeout', async () => {
    const pidfile = join(tmpdir(), `computalot-tree-${process.pid}-${Date.now()}`);
    const j = await done((await job({ payload: { mode: 'tree', pidfile }, timeout_s: 1, retries: { max_attempts: 1, backoff_s: 0 } })).id);
    assert.equal(j.status, 'failed');
    const [task] = await tasks(srv.url, acc.member, j.id);
    assert.equal(task.error.code, 'timeout');
    const pids = (await readFile(pidfile, 'utf8')).split(' ').map(Number);
    assert.equal(pids.length, 3);
    for (const pid of pids) assert.equal(alive(pid), false, `pid ${pid} is gone`);
  });

  it('cancels a running job: the tree is stopped and the task is never retried', async () => {
    const pidfile = join(tmpdir(), `computalot-cancel-${process.pid}-${Date.now()}`);
    const j = await job({ payload: { mode: 'tree', pidfile }, retries: { max_attempts: 3, backoff_s: 0 } });
    await waitJob(srv.url, acc.member, j.id, (x) => x.tasks.running === 1);
    for (let i = 0; i < 100 && !(await readFile(pidfile, 'utf8').catch(() => '')); i += 1) await sleep(50);
    const res = await call(srv.url, 'POST', `/api/v1/jobs/${j.id}/cancel`, { token: acc.member });
    assert.equal(res.status, 200);
    const finished = await done(j.id);
    assert.equal(finished.status, 'cancelled');
    const [task] = await tasks(srv.url, acc.member, j.id);
    assert.equal(task.status, 'cancelled');
    assert.equal(task.attempts.length, 1);
    for (const pid of (await readFile(pidfile, 'utf8')).split(' ').map(Number)) assert.equal(alive(pid), false);
  });

  it('a cancel before a task starts means it never starts', async () => {
    const blockers = await Promise.all([1, 2, 3, 4].map(() => job({ payload: { mode: 'sleep', seconds: 2 } })));
    await waitJob(srv.url, acc.member, blockers[0]!.id, (x) => x.status === 'running');
    const queued = await job({ payload: { mode: 'echo' } });
    const res = await call(srv.url, 'POST', `/api/v1/jobs/${queued.id}/cancel`, { token: acc.member });
    assert.equal(res.body.cancelled_tasks, 1);
    const finished = await done(queued.id);
    assert.equal(finished.status, 'cancelled');
    const [task] = await tasks(srv.url, acc.member, queued.id);
    assert.equal(task.attempts.length, 0, 'it never started');
    for (const b of blockers) assert.equal((await done(b.id)).status, 'completed');
  });

  it('keeps output with NUL bytes (as U+FFFD), so PostgreSQL accepts the report', async () => {
    const j = await done((await job({ runner_command: ['sh', '-c', 'printf "a\\000b\\n"; echo \'{"ok": 1}\''] })).id);
    assert.equal(j.status, 'completed');
    const [task] = await tasks(srv.url, acc.member, j.id);
    assert.match(task.output, /a\uFFFDb/);
  });

  it('reports progress lines as latest_progress and task.progress events', async () => {
    const j = await done((await job({ payload: { mode: 'progress' } })).id);
    const [task] = await tasks(srv.url, acc.member, j.id);
    assert.deepEqual(task.latest_progress, { progress: 1, message: 'step 4' });
    assert.match(task.live_feedback.output_tail, /step 4/);
  });

  it('a submit right after a push, an env change or a delete sees it', async () => {
    const name = 'moving';
    await pushFixture(srv.url, acc.member, name);
    const first = await submit(srv.url, acc.member, { project: name, payload: { mode: 'echo' } });
    const hashOf = async (id: string) => (await call(srv.url, 'GET', `/api/v1/jobs/${id}`, { token: acc.member })).body.content_hash;
    const before = await hashOf(first.id);
    // A new revision: a different tarball (gzip level changes nothing inside; an extra file does).
    const dir = await mkdtemp(join(tmpdir(), 'moving-'));
    execFileSync('cp', ['-r', `${join(ROOT, 'test/fixtures/jobs-project')}/.`, dir]);
    await writeFile(join(dir, 'extra.txt'), 'b');
    const tarball = join(dir, '..', `moving-${process.pid}.tar.gz`);
    execFileSync('tar', ['czf', tarball, '-C', dir, '.']);
    const pushed = await call(srv.url, 'POST', `/api/v1/projects/${name}/push`, { token: acc.member, body: await readFile(tarball) });
    assert.equal(pushed.status, 201, pushed.text);
    const second = await submit(srv.url, acc.member, { project: name, payload: { mode: 'echo' } });
    assert.notEqual(await hashOf(second.id), before);
    assert.equal(await hashOf(second.id), pushed.body.content_hash);
    // The project's env, layered under the job's.
    assert.equal((await call(srv.url, 'PUT', `/api/v1/projects/${name}`, { token: acc.member, json: { env: { GREETING: 'changed' } } })).status, 200);
    const third = await submit(srv.url, acc.member, { project: name, payload: { mode: 'echo' } });
    await waitJob(srv.url, acc.member, third.id);
    assert.equal((await results(srv.url, acc.member, third.id)).aggregate_result.env.GREETING, 'changed');
    // Deleted (once idle): the next submit is a 404, not a job.
    for (const id of [first.id, second.id]) await waitJob(srv.url, acc.member, id);
    assert.equal((await call(srv.url, 'DELETE', `/api/v1/projects/${name}`, { token: acc.member })).status, 204);
    const gone = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: { project: name, payload: { mode: 'echo' } } });
    assert.equal(gone.status, 404);
    assert.equal(gone.body.error.code, 'project_not_found');
    await rm(dir, { recursive: true, force: true });
    await rm(tarball, { force: true });
  });

  it('honours idempotency keys: same body → same job (200), other body → 409', async () => {
    const body = { project: P, payload: { mode: 'echo', k: 1 }, idempotency_key: 'key-1' };
    const first = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: body });
    const again = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: body });
    assert.equal(first.status, 201);
    assert.equal(again.status, 200);
    assert.equal(again.body.id, first.body.id);
    const other = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: { ...body, payload: { mode: 'echo', k: 2 } } });
    assert.equal(other.status, 409);
    assert.equal(other.body.error.code, 'idempotency_conflict');
    const header = { project: P, payload: { mode: 'echo', k: 3 } };
    const h1 = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: header, headers: { 'idempotency-key': 'hdr-1' } });
    const h2 = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: header, headers: { 'idempotency-key': 'hdr-1' } });
    assert.equal(h2.status, 200);
    assert.equal(h2.body.id, h1.body.id);
  });

  it('an idempotency key of a deleted project\'s job makes a new job in the project made again under that name', async () => {
    const name = 'reborn';
    await pushFixture(srv.url, acc.member, name);
    const body = { project: name, payload: { mode: 'echo' }, idempotency_key: 'reborn-key' };
    const first = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: body });
    assert.equal(first.status, 201);
    await waitJob(srv.url, acc.member, first.body.id);
    assert.equal((await call(srv.url, 'DELETE', `/api/v1/projects/${name}`, { token: acc.member })).status, 204);
    await pushFixture(srv.url, acc.member, name);
    const again = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: body });
    assert.equal(again.status, 201, JSON.stringify(again.body));
    assert.notEqual(again.body.id, first.body.id);
    assert.equal((await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: body })).body.id, again.body.id, 'the key now names the new job');
  });

  it('takes a batch, each job on its own', async () => {
    const res = await call(srv.url, 'POST', '/api/v1/jobs/batch', { token: acc.member, json: { jobs: [
      { project: P, payload: { mode: 'echo' } },
      { project: 'nope', payload: {} },
      { project: P, timeout_s: 0 },
      { project: P, payload: { mode: 'echo' } },
    ] } });
    assert.equal(res.status, 200);
    const [a, b, c, d] = res.body.jobs;
    assert.ok(a.id && d.id);
    assert.equal(b.error.code, 'project_not_found');
    assert.equal(c.error.code, 'validation_failed');
    assert.equal(c.error.details.problems[0].path, '/timeout_s');
    assert.equal((await done(a.id)).status, 'completed');
  });

  it('takes a large batch whole and in order, even when a project changed under part of it', async () => {
    // 300 jobs of a project as it was read, then 300 of one whose env changed after this server read it.
    // On PostgreSQL the batch is two parts side by side: the first is created, the second finds its project
    // changed (stale) and only its jobs are planned again; on SQLite it is one transaction, planned again whole.
    for (const name of ['steady', 'shifting']) {
      await pushFixture(srv.url, acc.member, name);
      await done((await submit(srv.url, acc.member, { project: name, runner_command: ['true'] })).id);
    }
    assert.equal((await call(srv.url, 'PUT', '/api/v1/projects/shifting', { token: acc.member, json: { env: { GREETING: 'batch' } } })).status, 200);
    const body = (project: string, i: number) => (i % 299 === 0
      ? { project, payload: { mode: 'echo' }, meta: { i } }
      : { project, runner_command: ['true'], meta: { i } });
    const jobs = [...Array.from({ length: 300 }, (_, i) => body('steady', i)), ...Array.from({ length: 300 }, (_, i) => body('shifting', 300 + i))];
    const res = await call(srv.url, 'POST', '/api/v1/jobs/batch', { token: acc.member, json: { jobs } });
    assert.equal(res.status, 200, res.text);
    const answers = res.body.jobs as Array<{ index: number; id?: string; error?: unknown }>;
    assert.deepEqual(answers.map((a) => a.index), jobs.map((_, i) => i));
    assert.ok(answers.every((a) => a.id && !a.error), JSON.stringify(answers.find((a) => !a.id)));
    assert.equal(new Set(answers.map((a) => a.id)).size, 600);
    for (const i of [0, 299, 300, 598, 599]) {
      const got = await call(srv.url, 'GET', `/api/v1/jobs/${answers[i]!.id}`, { token: acc.member });
      assert.deepEqual(got.body.meta, { i }, `answer ${i} is its own job`);
      assert.equal(got.body.project, i < 300 ? 'steady' : 'shifting');
    }
    assert.equal((await results(srv.url, acc.member, (await done(answers[299]!.id!)).id)).aggregate_result.env.GREETING, 'hello', 'the manifest\'s env');
    assert.equal((await results(srv.url, acc.member, (await done(answers[598]!.id!)).id)).aggregate_result.env.GREETING, 'batch');
    for (const a of answers) assert.equal((await done(a.id!)).status, 'completed');
  });

  // PostgreSQL only (registered in its pass): SQLite creates a batch in one transaction, so it has no parts.
  if (storeKind() === 'postgres') it('a large batch whose second part the database refuses: the first part is created, the second answers store_failed', async () => {
    // A trigger makes PostgreSQL refuse the insert of any job marked in its meta: the real error path of
    // one part's transaction, while the other part commits.
    const { default: pg } = await import('pg');
    const db = new pg.Client(srv.databaseUrl!);
    await db.connect();
    try {
      await db.query(`create function refuse_marked_job() returns trigger language plpgsql as $$
        begin if new.meta like '%"refuse"%' then raise exception 'refused by the test'; end if; return new; end $$`);
      await db.query('create trigger refuse_marked_job before insert on jobs for each row execute function refuse_marked_job()');
      const jobs = Array.from({ length: 600 }, (_, i) => ({ project: P, runner_command: ['true'], meta: i < 300 ? { i } : { i, refuse: true } }));
      const res = await call(srv.url, 'POST', '/api/v1/jobs/batch', { token: acc.member, json: { jobs } });
      assert.equal(res.status, 200, res.text);
      const answers = res.body.jobs as Array<{ index: number; id?: string; error?: { code: string; message: string } }>;
      assert.ok(answers.slice(0, 300).every((a) => a.id), 'the first part is created');
      assert.ok(answers.slice(300).every((a) => !a.id && a.error?.code === 'store_failed'), JSON.stringify(answers[300]));
      assert.match(answers[300]!.error!.message, /not created and may be submitted again/);
      const { rows } = await db.query(`select count(*)::int as n from jobs where meta like '%"refuse"%'`);
      assert.equal(rows[0].n, 0, 'nothing of the refused part stays');
      for (const i of [0, 299]) assert.deepEqual((await call(srv.url, 'GET', `/api/v1/jobs/${answers[i]!.id}`, { token: acc.member })).body.meta, { i });
      for (const a of answers.slice(0, 300)) assert.equal((await done(a.id!)).status, 'completed');
    } finally {
      await db.query('drop trigger if exists refuse_marked_job on jobs').catch(() => undefined);
      await db.query('drop function if exists refuse_marked_job()').catch(() => undefined);
      await db.end();
    }
  });

  it('answers bad submissions with the reason and the path', async () => {
    const bad = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: { project: P, fan_out: { by: 'xs' }, payload: { xs: 3 } } });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.error.details.problems[0].path, '/payload/xs');
    const missing = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: { project: 'nope' } });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'project_not_found');
    await call(srv.url, 'POST', '/api/v1/projects', { token: acc.member, json: { name: 'empty' } });
    const unpushed = await call(srv.url, 'POST', '/api/v1/jobs', { token: acc.member, json: { project: 'empty' } });
    assert.equal(unpushed.status, 409);
    assert.equal(unpushed.body.error.code, 'project_not_pushed');
  });

  it('lists jobs by project and status, newest first', async () => {
    const res = await call(srv.url, 'GET', `/api/v1/jobs?project=${P}&status=completed&limit=2`, { token: acc.member });
    assert.equal(res.status, 200);
    assert.equal(res.body.jobs.length, 2);
    assert.ok(res.body.jobs[0].id > res.body.jobs[1].id);
    assert.ok(res.body.next_cursor);
  });

  it('makes the worker count as warm: ready_for_jobs and a warm node', async () => {
    const status = await call(srv.url, 'GET', `/api/v1/projects/${P}/status/details`, { token: acc.member });
    assert.equal(status.body.ready_for_jobs, true);
    assert.equal(status.body.nodes[0].node, 'node-1');
    assert.equal(status.body.nodes[0].state, 'warm');
    const health = await call(srv.url, 'GET', '/health', { token: null });
    assert.equal(health.body.workers_online, 1);
  });
});
