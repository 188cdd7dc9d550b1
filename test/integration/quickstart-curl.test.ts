/**
 * The README's curl walk-through, run letter for letter (the block between the walkthrough markers)
 * with real curl against a real `npm start` server, then checked through the API.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { testDatabase, type TestDatabase } from '../helpers/db.js';
import { call } from '../helpers/http.js';
import { ociOnly, recordBuiltImages } from '../helpers/oci.js';
import { ADMIN_TOKEN, ROOT, spawnServer, type SpawnedServer } from '../helpers/server.js';
import { cgroupSkip } from '../helpers/processes.js';

const run = promisify(execFile);

async function walkthrough(): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8');
  const match = /<!-- walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme);
  assert.ok(match?.[1], 'README.md has a walkthrough block');
  return match[1];
}

for (const runtime of ['process', 'oci'] as const) describe(`README walk-through with curl against npm start (COMPUTALOT_RUNTIME=${runtime})`, runtime === 'oci' ? ociOnly() : {}, () => {
  let server: SpawnedServer;
  let db: TestDatabase;
  let dataDir: string;
  let workDir: string;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'computalot-qs-'));
    workDir = await mkdtemp(join(tmpdir(), 'computalot-qs-src-'));
    await cp(join(ROOT, 'examples/hello-python'), workDir, { recursive: true });
    db = await testDatabase();
    server = await spawnServer({
      COMPUTALOT_DATA_DIR: dataDir, COMPUTALOT_ADMIN_TOKEN: ADMIN_TOKEN, COMPUTALOT_RUNTIME: runtime, COMPUTALOT_LOCAL_WORKERS: '1',
      ...(db.url ? { DATABASE_URL: db.url } : {}),
    });
  });
  after(async () => {
    await server.stop();
    await db.drop();
    await recordBuiltImages(dataDir);
    await rm(dataDir, { recursive: true, force: true });
    await rm(workDir, { recursive: true, force: true });
  });

  it('creates, pushes, submits a job, inits, reads status and round-trips KV exactly as written', async () => {
    const script = await walkthrough();
    const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script], {
      cwd: workDir, env: { ...process.env, BASE_URL: server.url, TOKEN: ADMIN_TOKEN },
    });
    // Each curl prints one JSON document; they follow one another on stdout.
    const docs = stdout.replace(/}\s*{/g, '}\n{').split('\n').filter(Boolean).map((line) => JSON.parse(line));
    const [created, pushed, job, init, status, kvPut, kvGet] = docs;
    assert.equal(created.name, 'my-project');
    assert.equal(created.remote_dir, '/root/my-project');
    assert.match(pushed.content_hash, /^sha256:[0-9a-f]{64}$/);
    assert.equal(pushed.revision, 1);
    assert.equal(pushed.published, true);
    assert.equal(pushed.unchanged, false);
    assert.equal(pushed.file_count, 3);
    assert.match(job.id, /^job_/);
    assert.equal(job.type, 'structured_runner');
    assert.equal(job.project, 'my-project');
    assert.equal(job.content_hash, pushed.content_hash);
    assert.equal(typeof init.targeted_workers, 'number');
    assert.equal(status.can_accept_new_jobs, true);
    assert.equal(typeof status.ready_for_jobs, 'boolean');
    assert.equal(kvPut.version, 1);
    assert.deepEqual(kvGet, { score: 0.93, by: 'run-7' });

    // Poll the job with curl until it completes, then read what script.py made of its payload.
    const curlJson = async (path: string) => JSON.parse((await run('curl', ['-sS', `${server.url}${path}`, '-H', `Authorization: Bearer ${ADMIN_TOKEN}`])).stdout);
    let polled = await curlJson(`/api/v1/jobs/${job.id}`);
    for (let i = 0; i < 600 && !['completed', 'failed', 'partial', 'cancelled'].includes(polled.status); i += 1) {
      await new Promise((r) => setTimeout(r, 100));
      polled = await curlJson(`/api/v1/jobs/${job.id}`);
    }
    assert.equal(polled.status, 'completed');
    const results = await curlJson(`/api/v1/results/${job.id}`);
    assert.deepEqual(results.aggregate_result, { echo: { test: true }, message: 'hello from computalot' });
    assert.equal(results.results[0].result_quality, 1);
    const ready = await curlJson('/api/v1/projects/my-project/status');
    assert.equal(ready.ready_for_jobs, true, 'the worker that ran the revision is warm for it');

    const project = await call(server.url, 'GET', '/api/v1/projects/my-project');
    assert.equal(project.body.content_hash, pushed.content_hash);
    const again = await run('curl', ['-sS', `${server.url}/api/v1/projects/my-project/push`, '-X', 'POST',
      '-H', `Authorization: Bearer ${ADMIN_TOKEN}`, '--data-binary', '@code.tar.gz'], { cwd: workDir });
    assert.equal(JSON.parse(again.stdout).unchanged, true);

    if (runtime === 'process' && !cgroupSkip()) {
      // The log says how task trees are kept, so an operator knows whether cgroups were usable.
      assert.match(server.output(), /process runtime: each task runs in a cgroup of its own/);
    }

    if (runtime === 'oci') {
      // The task ran inside gVisor: its kernel is gVisor's fake 4.4.0, not the host's.
      const submitted = await run('curl', ['-sS', `${server.url}/api/v1/jobs`, '-X', 'POST', '-H', `Authorization: Bearer ${ADMIN_TOKEN}`,
        '-H', 'Content-Type: application/json', '-d', JSON.stringify({ project: 'my-project', runner_command: ['cat', '/proc/version'] })]);
      const probe = JSON.parse(submitted.stdout);
      let done = await curlJson(`/api/v1/jobs/${probe.id}`);
      for (let i = 0; i < 300 && done.status !== 'completed' && done.status !== 'failed'; i += 1) {
        await new Promise((r) => setTimeout(r, 100));
        done = await curlJson(`/api/v1/jobs/${probe.id}`);
      }
      assert.equal(done.status, 'completed');
      const output = (await run('curl', ['-sS', `${server.url}/api/v1/jobs/${probe.id}/output`, '-H', `Authorization: Bearer ${ADMIN_TOKEN}`])).stdout;
      const hostVersion = await readFile('/proc/version', 'utf8');
      assert.match(output, /Linux version 4\.4\.0/, output);
      assert.ok(!output.includes(hostVersion.trim()), 'the host kernel is not visible');
      const tasks = await curlJson(`/api/v1/jobs/${job.id}/tasks`);
      const cold = tasks.tasks[0].cold_start;
      assert.ok(cold && cold.build_ms > 0 && cold.sandbox_ms > 0, `first task reports a cold start: ${JSON.stringify(cold)}`);
    }
  });
});
