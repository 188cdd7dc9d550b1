/**
 * Lifecycles of oci runtimes and attempts, for real: checkpoints that survive into the next attempt,
 * cancel of a task running in a warm sandbox, task-scoped services, a service restarted by its policy, and
 * idle runtimes dropped after COMPUTALOT_WARM_IDLE_S (readiness says so; the next task cold-starts).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { submit, tasks, waitJob } from '../helpers/jobs.js';
import { listImages, ociOnly, recordBuiltImages } from '../helpers/oci.js';
import { details, pushProject, waitDetails } from '../helpers/oci-project.js';
import { ADMIN_TOKEN, spawnServer, startTestServer, type TestServer } from '../helpers/server.js';
import { testDatabase } from '../helpers/db.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SERVICE = `import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"task-service")
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
`;

describe('oci runtime lifecycles', ociOnly(), () => {
  let srv: TestServer;
  let acc: TestAccount;

  before(async () => {
    srv = await startTestServer({ COMPUTALOT_RUNTIME: 'oci', COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '2', COMPUTALOT_WARM_IDLE_S: '3' });
    acc = await makeAccount(srv.url, 'life');
    await pushProject(srv.url, acc.member, 'box', { files: { 'service.py': SERVICE } });
  });
  after(async () => {
    await srv?.stop();
  });

  it('a task that fails on attempt 1 finds attempt 1\'s checkpoint on attempt 2', async () => {
    const job = await submit(srv.url, acc.member, { project: 'box', payload: { mode: 'checkpoint' }, checkpoint: { enabled: true }, retries: { max_attempts: 2, backoff_s: 0 } });
    const done = await waitJob(srv.url, acc.member, job.id, undefined, 120_000);
    const [task] = await tasks(srv.url, acc.member, job.id);
    assert.equal(done.status, 'completed', JSON.stringify(task));
    assert.equal(task.attempts.length, 2);
    assert.equal(task.result.found, 'saved by attempt 1');
  });

  it('cancel stops a task running in the warm sandbox', async () => {
    const job = await submit(srv.url, acc.member, { project: 'box', payload: { mode: 'sleep' } });
    await waitJob(srv.url, acc.member, job.id, (j) => j.tasks.running === 1, 120_000);
    const res = await call(srv.url, 'POST', `/api/v1/jobs/${job.id}/cancel`, { token: acc.member, json: {} });
    assert.equal(res.status, 200);
    const done = await waitJob(srv.url, acc.member, job.id, undefined, 30_000);
    assert.equal(done.status, 'cancelled');
  });

  it('task-scoped services start for each task; a service with restart "always" comes back after it dies', async () => {
    await pushProject(srv.url, acc.member, 'svc', {
      files: { 'service.py': SERVICE },
      manifest: {
        runtime: {
          services: [
            { name: 'per-task', command: ['python3', 'service.py', '7081'], scope: 'task', restart: 'never', ready_timeout_s: 20, healthcheck: { command: ['python3', '-c', 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:7081/")'] } },
            { name: 'flaky', command: ['sh', '-c', 'echo start >> /tmp/flaky-starts; sleep 1; exit 1'], scope: 'project', restart: 'always' },
          ],
        },
      },
    });
    for (let i = 0; i < 2; i += 1) {
      const job = await submit(srv.url, acc.member, { project: 'svc', payload: { mode: 'http', url: 'http://127.0.0.1:7081/' } });
      await waitJob(srv.url, acc.member, job.id, undefined, 120_000);
      const [task] = await tasks(srv.url, acc.member, job.id);
      assert.equal(task.result?.body, 'task-service', JSON.stringify(task));
    }
    // The flaky service exits 1 after a second each time; "always" starts it again (with a backoff).
    const watch = await submit(srv.url, acc.member, { project: 'svc', runner_command: ['sh', '-c', 'sleep 3; cat /tmp/flaky-starts'] });
    await waitJob(srv.url, acc.member, watch.id, undefined, 120_000);
    const [watched] = await tasks(srv.url, acc.member, watch.id);
    assert.ok((watched.output.match(/start/g) ?? []).length >= 2, `the service was restarted: ${watched.output}`);
  });

  it('an idle runtime is dropped after COMPUTALOT_WARM_IDLE_S: readiness says stale, the sandbox is gone, the next task cold-starts', async () => {
    // Content of its own: other test files' servers run sandboxes of the shared fixture meanwhile.
    await pushProject(srv.url, acc.member, 'idle', { files: { 'unique.txt': `${Date.now()}-${Math.random()}` } });
    const first = await submit(srv.url, acc.member, { project: 'idle', payload: { mode: 'echo' } });
    await waitJob(srv.url, acc.member, first.id, undefined, 120_000);
    const warm = await details(srv.url, acc.member, 'idle');
    assert.equal(warm.nodes[0].state, 'warm');
    const dropped = await waitDetails(srv.url, acc.member, 'idle', (d) => d.nodes[0]?.state === 'stale', 30_000);
    assert.match(dropped.nodes[0].status_reason ?? '', /^dropped: idle for \d+ s/);
    assert.equal(dropped.ready_for_jobs, false);
    const hash12 = warm.nodes[0].content_hash.slice('sha256:'.length, 'sha256:'.length + 12);
    // Readiness says stale when the drop is decided; the sandbox stops right after.
    let containers = '';
    for (let i = 0; i < 100; i += 1) {
      containers = execFileSync('podman', ['ps', '-a', '--format', '{{.Names}}']).toString();
      if (!containers.includes(hash12)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(!containers.includes(hash12), `no container of the dropped runtime is left: ${containers}`);
    const next = await submit(srv.url, acc.member, { project: 'idle', payload: { mode: 'echo' } });
    await waitJob(srv.url, acc.member, next.id, undefined, 120_000);
    const [task] = await tasks(srv.url, acc.member, next.id);
    assert.equal(task.status, 'completed');
    assert.ok(task.cold_start && task.cold_start.sandbox_ms > 0, `a cold start again: ${JSON.stringify(task.cold_start)}`);
    assert.equal(task.cold_start.build_ms < 5_000, true, 'the image was kept');
  });
});

describe('oci runtimes under disk pressure', ociOnly(), () => {
  let srv: TestServer;
  let acc: TestAccount;
  before(async () => {
    // A threshold no disk meets: every idle runtime counts as taking space that is short.
    srv = await startTestServer({ COMPUTALOT_RUNTIME: 'oci', COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_MIN_FREE_DISK_MB: String(2 ** 40) });
    acc = await makeAccount(srv.url, 'disk');
  });
  after(async () => {
    await srv?.stop();
  });

  it('removes unused images, then drops idle runtimes with their images, when the disk is short', async () => {
    // Content of its own, so no other test's project shares its image tags.
    const tag = `${Date.now()}-${Math.random()}`;
    const first = await pushProject(srv.url, acc.member, 'full', { files: { 'unique.txt': `a-${tag}` } });
    const one = await submit(srv.url, acc.member, { project: 'full', payload: { mode: 'echo' } });
    assert.equal((await waitJob(srv.url, acc.member, one.id, undefined, 120_000)).status, 'completed');
    const second = await pushProject(srv.url, acc.member, 'full', { files: { 'unique.txt': `b-${tag}` } });
    const two = await submit(srv.url, acc.member, { project: 'full', payload: { mode: 'echo' } });
    assert.equal((await waitJob(srv.url, acc.member, two.id, undefined, 120_000)).status, 'completed');
    const dropped = await waitDetails(srv.url, acc.member, 'full', (d) => d.nodes[0]?.state === 'stale', 60_000);
    assert.equal(dropped.nodes[0].status_reason, 'dropped: the disk is nearly full');
    const tags = [first, second].map((p) => `:${p.content_hash.slice('sha256:'.length, 'sha256:'.length + 16)}`);
    let left: string[] = [];
    for (let i = 0; i < 100; i += 1) {
      left = (await listImages()).filter((line) => line.startsWith('localhost/computalot/prj_') && tags.some((t) => line.endsWith(t)));
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(left, [], 'both revisions\' images were removed');
    assert.ok((await listImages()).includes('localhost/computalot/python:bookworm'), 'base images are kept');
  });
});

describe('preparations that take too long', ociOnly(), () => {
  let srv: TestServer;
  let acc: TestAccount;
  before(async () => {
    srv = await startTestServer({ COMPUTALOT_RUNTIME: 'oci', COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_BUILD_TIMEOUT_S: '3' });
    acc = await makeAccount(srv.url, 'slow');
  });
  after(async () => {
    await srv?.stop();
  });

  it('a build past COMPUTALOT_BUILD_TIMEOUT_S fails the preparation with build_timeout', async () => {
    await pushProject(srv.url, acc.member, 'slow-build', {
      files: { Dockerfile: 'FROM localhost/computalot/python:bookworm\nWORKDIR /work\nCOPY . .\nRUN sleep 61.25\n', unique: `${Date.now()}-${Math.random()}` },
    });
    const started = Date.now();
    const job = await submit(srv.url, acc.member, { project: 'slow-build', retries: { max_attempts: 1 } });
    const done = await waitJob(srv.url, acc.member, job.id, undefined, 60_000);
    assert.equal(done.status, 'failed');
    assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`);
    const [task] = await tasks(srv.url, acc.member, job.id);
    assert.equal(task.error.code, 'build_timeout', JSON.stringify(task.error));
    assert.match(task.error.message, /within 3 s/);
    // The RUN step's process did not outlive the build.
    const sleeping = execFileSync('ps', ['-eo', 'args']).toString().split('\n').filter((line) => line.includes('sleep 61.25'));
    assert.deepEqual(sleeping, []);
  });

  it('cancel reaches a task whose runtime is still being prepared', async () => {
    await pushProject(srv.url, acc.member, 'slow-init', {
      manifest: { runtime: { init: { commands: [{ label: 'slow', command: ['sleep', '30'] }] } } },
    });
    const job = await submit(srv.url, acc.member, { project: 'slow-init', payload: { mode: 'echo' } });
    await waitJob(srv.url, acc.member, job.id, (j) => /^preparing runtime on node-\d+: init/.test(j.status_reason ?? ''), 60_000);
    const cancelledAt = Date.now();
    assert.equal((await call(srv.url, 'POST', `/api/v1/jobs/${job.id}/cancel`, { token: acc.member, json: {} })).status, 200);
    const done = await waitJob(srv.url, acc.member, job.id, undefined, 20_000);
    assert.equal(done.status, 'cancelled');
    assert.ok(Date.now() - cancelledAt < 5_000, `cancel took ${Date.now() - cancelledAt} ms`);
  });
});

describe('SIGTERM while a runtime is being prepared', ociOnly(), () => {
  it('hands the waiting task back at once; the next server runs it without spending an attempt', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'computalot-term-'));
    const db = await testDatabase();
    const env = {
      COMPUTALOT_DATA_DIR: dataDir, COMPUTALOT_ADMIN_TOKEN: ADMIN_TOKEN, COMPUTALOT_RUNTIME: 'oci', COMPUTALOT_LOCAL_WORKERS: '1',
      ...(db.url ? { DATABASE_URL: db.url } : {}),
    };
    let server = await spawnServer(env, 'node');
    try {
      const acc = await makeAccount(server.url, 'term');
      await pushProject(server.url, acc.member, 'slow', {
        manifest: { runtime: { init: { commands: [{ label: 'slow', command: ['sleep', '8'] }] } } },
        files: { unique: `${Date.now()}-${Math.random()}` },
      });
      const job = await submit(server.url, acc.member, { project: 'slow', payload: { mode: 'echo' }, retries: { max_attempts: 1 } });
      await waitJob(server.url, acc.member, job.id, (j) => /^preparing runtime on node-\d+: init/.test(j.status_reason ?? ''), 60_000);
      const t0 = Date.now();
      assert.equal(await server.stop('SIGTERM'), 0);
      assert.ok(Date.now() - t0 < 8_000, `the server took ${Date.now() - t0} ms to stop`);
      server = await spawnServer({ ...env }, 'node');
      const done = await waitJob(server.url, acc.member, job.id, undefined, 120_000);
      assert.equal(done.status, 'completed', 'handed back, not failed: its one attempt was not spent');
    } finally {
      await server.stop();
      await db.drop();
      await recordBuiltImages(dataDir);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
