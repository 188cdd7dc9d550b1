/**
 * Preparing runtimes for real with the oci runtime (SPEC §5, §8): the first job after a push (preparing
 * with a reason, then a cold_start breakdown and a warm node), a broken Dockerfile, a failed validation
 * check, /init before any job, invalidate then rebuild without the layer cache, services with
 * healthchecks, cache mounts across tasks and revisions, and data sources checked against their sha256.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { results, submit, tasks, waitJob } from '../helpers/jobs.js';
import { listImages, ociOnly } from '../helpers/oci.js';
import { details, pushProject, waitDetails } from '../helpers/oci-project.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const imageExists = (image: string): boolean => {
  try {
    execFileSync('podman', ['image', 'exists', image], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

describe('preparing oci runtimes', ociOnly(), () => {
  let srv: TestServer;
  let acc: TestAccount;
  let files: Server;
  let filesUrl: string;
  const words = 'alpha\nbeta\ngamma\n';

  before(async () => {
    srv = await startTestServer({ COMPUTALOT_RUNTIME: 'oci', COMPUTALOT_LOCAL_WORKERS: '1', COMPUTALOT_WORKER_SLOTS: '2' });
    acc = await makeAccount(srv.url, 'prep');
    files = createServer((req, res) => {
      if (req.url === '/words.txt') res.end(words);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', resolve));
    filesUrl = `http://127.0.0.1:${(files.address() as { port: number }).port}`;
  });
  after(async () => {
    files?.close();
    await srv?.stop();
  });

  it('the first job after a push: preparing with a reason, then a cold_start breakdown and a warm node', async () => {
    const pushed = await pushProject(srv.url, acc.member, 'first', {
      manifest: { runtime: { init: { commands: [{ label: 'slow init', command: ['sleep', '1.5'] }] } } },
    });
    assert.equal(pushed.ready_for_jobs, false);
    const job = await submit(srv.url, acc.member, { project: 'first', payload: { mode: 'echo', n: 1 } });
    const reasons = new Set<string>();
    const done = await waitJob(srv.url, acc.member, job.id, (j) => {
      if (j.status_reason) reasons.add(j.status_reason);
      return ['completed', 'failed'].includes(j.status);
    }, 120_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.ok([...reasons].some((r) => /^preparing runtime on node-1: init/.test(r)), `reasons seen: ${[...reasons].join(' | ')}`);
    const [task] = await tasks(srv.url, acc.member, job.id);
    const cold = task.cold_start;
    assert.ok(cold, 'the first task reports its cold start');
    for (const k of ['fetch_ms', 'build_ms', 'init_ms', 'sandbox_ms']) assert.equal(typeof cold[k], 'number', k);
    assert.ok(cold.build_ms > 0 && cold.sandbox_ms > 0, JSON.stringify(cold));
    assert.ok(cold.init_ms >= 1400, `init took the slow init command's time: ${JSON.stringify(cold)}`);
    const d = await details(srv.url, acc.member, 'first');
    assert.equal(d.ready_for_jobs, true);
    assert.equal(d.nodes[0].node, 'node-1');
    assert.equal(d.nodes[0].state, 'warm');
    assert.match(d.nodes[0].log_tail, /STEP 1\/\d+: FROM localhost\/computalot\/python:bookworm/);
    // Warm: the next task reports no cold start.
    const next = await submit(srv.url, acc.member, { project: 'first', payload: { mode: 'echo' } });
    await waitJob(srv.url, acc.member, next.id);
    assert.equal((await tasks(srv.url, acc.member, next.id))[0].cold_start, null);
    // An identical re-push keeps the runtime warm.
    const again = await pushProject(srv.url, acc.member, 'first', {
      manifest: { runtime: { init: { commands: [{ label: 'slow init', command: ['sleep', '1.5'] }] } } },
    });
    assert.equal(again.unchanged, true);
    assert.equal(again.ready_for_jobs, true);
  });

  it('builds the manifest\'s build target with its args, from its dockerfile and context; resources.cpu limits the sandbox', async () => {
    const dockerfile = [
      'FROM localhost/computalot/python:bookworm AS app',
      'ARG GREETING=unset',
      'WORKDIR /work',
      'COPY . .',
      'RUN echo "$GREETING" > /greeting',
      'FROM app AS broken',
      'RUN exit 1',
      '',
    ].join('\n');
    await pushProject(srv.url, acc.member, 'targeted', {
      files: { 'build.Dockerfile': dockerfile, unique: `${Date.now()}-${Math.random()}` },
      manifest: { build: { dockerfile: 'build.Dockerfile', context: '.', target: 'app', args: { GREETING: 'hello from an arg' } }, resources: { cpu: 0.5 } },
    });
    const job = await submit(srv.url, acc.member, { project: 'targeted', payload: { mode: 'read', path: '/greeting' } });
    await waitJob(srv.url, acc.member, job.id, undefined, 120_000);
    const [task] = await tasks(srv.url, acc.member, job.id);
    assert.equal(task.status, 'completed', JSON.stringify(task));
    assert.equal(task.result.content, 'hello from an arg\n', 'the arg reached the build, and the broken stage after the target was not built');
    const hash12 = (await details(srv.url, acc.member, 'targeted')).content_hash.slice(7, 19);
    const names = execFileSync('podman', ['ps', '--format', '{{.Names}}']).toString().split('\n').filter((n) => n.includes(hash12));
    assert.equal(names.length, 1, `one warm sandbox: ${names}`);
    const nanoCpus = execFileSync('podman', ['inspect', '--format', '{{.HostConfig.NanoCpus}}', names[0]!]).toString().trim();
    assert.equal(nanoCpus, String(0.5 * 2 * 1e9), 'cpu 0.5 per task × 2 slots');
  });

  it('a broken Dockerfile: the failing step in log_tail, the job failed with a reason, no hang', async () => {
    await pushProject(srv.url, acc.member, 'broken', {
      files: { Dockerfile: 'FROM localhost/computalot/python:bookworm\nWORKDIR /work\nCOPY . .\nRUN echo about to fail && exit 7\n' },
    });
    const job = await submit(srv.url, acc.member, { project: 'broken', retries: { max_attempts: 1 } });
    const done = await waitJob(srv.url, acc.member, job.id, undefined, 120_000);
    assert.equal(done.status, 'failed');
    const [task] = await tasks(srv.url, acc.member, job.id);
    assert.equal(task.error.code, 'build_failed', JSON.stringify(task.error));
    assert.match(task.error.message, /STEP 4\/\d+: RUN echo about to fail && exit 7/);
    const d = await details(srv.url, acc.member, 'broken');
    const node = d.nodes[0];
    assert.equal(node.state, 'failed');
    assert.equal(node.phase, 'build');
    assert.equal(node.error.code, 'build_failed');
    assert.match(node.log_tail, /STEP 4\/\d+: RUN echo about to fail && exit 7/);
    assert.match(node.log_tail, /about to fail/);
    assert.match(d.status_message, /fail/i);
  });

  it('a failed validation check is named in details', async () => {
    await pushProject(srv.url, acc.member, 'invalid', {
      manifest: { validation: { executables: ['python3', 'no-such-tool'], files: ['job.py'], commands: [{ label: 'true works', command: ['true'] }] } },
    });
    const job = await submit(srv.url, acc.member, { project: 'invalid', retries: { max_attempts: 1 } });
    const done = await waitJob(srv.url, acc.member, job.id, undefined, 120_000);
    assert.equal(done.status, 'failed');
    const node = (await details(srv.url, acc.member, 'invalid')).nodes[0];
    assert.equal(node.state, 'failed');
    assert.equal(node.phase, 'validate');
    assert.equal(node.error.code, 'validation_failed');
    assert.match(node.error.message, /executable no-such-tool/);
    const byCheck = Object.fromEntries(node.validation.map((c: any) => [c.check, c.ok]));
    assert.deepEqual(byCheck, { 'executable python3': true, 'executable no-such-tool': false, 'file job.py': true, 'true works': true });
  });

  it('init prepares a runtime before any job; invalidate discards it and its image; the next preparation rebuilds without the layer cache', async () => {
    // Content of its own, so no other test's project shares its image tag.
    const pushed = await pushProject(srv.url, acc.member, 'ahead', { files: { 'unique.txt': `${Date.now()}-${Math.random()}` } });
    const init = await call(srv.url, 'POST', '/api/v1/projects/ahead/init', { token: acc.member, json: {} });
    assert.equal(init.status, 202);
    assert.equal(init.body.targeted_workers, 1);
    const warm = await waitDetails(srv.url, acc.member, 'ahead', (d) => d.ready_for_jobs === true);
    assert.equal(warm.nodes[0].state, 'warm');
    assert.equal(warm.jobs.queued + warm.jobs.running, 0);
    const listed = await listImages();
    const hex = pushed.content_hash.slice('sha256:'.length, 'sha256:'.length + 16);
    const ours = listed.find((line) => line.endsWith(`:${hex}`));
    assert.ok(ours && imageExists(ours), `the image was built: ${listed.join(' ')}`);

    const inv = await call(srv.url, 'POST', '/api/v1/projects/ahead/invalidate', { token: acc.member, json: {} });
    assert.equal(inv.status, 200);
    const stale = await waitDetails(srv.url, acc.member, 'ahead', (d) => d.nodes[0]?.status_reason !== 'invalidated' && d.nodes[0]?.state === 'stale' && !imageExists(ours!), 30_000);
    assert.equal(stale.ready_for_jobs, false);
    const job = await submit(srv.url, acc.member, { project: 'ahead', payload: { mode: 'echo' } });
    const done = await waitJob(srv.url, acc.member, job.id, undefined, 120_000);
    assert.equal(done.status, 'completed');
    const node = (await details(srv.url, acc.member, 'ahead')).nodes[0];
    assert.equal(node.state, 'warm');
    assert.match(node.log_tail, /without the layer cache/);
    assert.doesNotMatch(node.log_tail, /Using cache/);
    assert.ok(imageExists(ours!), 'the image was built again');
  });

  it('two accounts\' projects with the same files share the layer cache, but a build log never names the other\'s image, and invalidating one keeps the other\'s', async () => {
    const other = await makeAccount(srv.url, 'twin');
    const files = { 'unique.txt': `${Date.now()}-${Math.random()}` };
    const pushed = await pushProject(srv.url, acc.member, 'twin-a', { files });
    await pushProject(srv.url, other.member, 'twin-b', { files });
    const hex = pushed.content_hash.slice('sha256:'.length, 'sha256:'.length + 16);
    assert.equal((await call(srv.url, 'POST', '/api/v1/projects/twin-a/init', { token: acc.member, json: {} })).status, 202);
    const a = await waitDetails(srv.url, acc.member, 'twin-a', (d) => d.ready_for_jobs === true);
    // Built second, from the first's cached layers: the image podman ends on carries both names.
    assert.equal((await call(srv.url, 'POST', '/api/v1/projects/twin-b/init', { token: other.member, json: {} })).status, 202);
    const b = await waitDetails(srv.url, other.member, 'twin-b', (d) => d.ready_for_jobs === true);
    const tagged = (log: string) => [...log.matchAll(/^Successfully tagged (\S+)$/gm)].map((m) => m[1]!);
    const imageA = tagged(a.nodes[0].log_tail)[0] ?? '';
    const bTags = tagged(b.nodes[0].log_tail);
    assert.ok(imageA.endsWith(`:${hex}`), a.nodes[0].log_tail);
    assert.equal(bTags.length, 1, b.nodes[0].log_tail);
    const imageB = bTags[0]!;
    assert.notEqual(imageB, imageA);
    assert.match(b.nodes[0].log_tail, /Using cache/, 'the second build reused the first one\'s layers');
    assert.ok(!b.nodes[0].log_tail.includes(imageA.split(':')[0]!), 'no name of the other account\'s project');
    const inspectId = (image: string) => execFileSync('podman', ['image', 'inspect', '--format', '{{.Id}}', image]).toString().trim();
    assert.equal(inspectId(imageA), inspectId(imageB), 'one image, two names');

    assert.equal((await call(srv.url, 'POST', '/api/v1/projects/twin-a/invalidate', { token: acc.member, json: {} })).status, 200);
    await waitDetails(srv.url, acc.member, 'twin-a', (d) => d.nodes[0]?.state === 'stale' && !imageExists(imageA), 30_000);
    assert.ok(imageExists(imageB), 'the other project\'s image is still there');
    const job = await submit(srv.url, other.member, { project: 'twin-b', payload: { mode: 'echo' } });
    assert.equal((await waitJob(srv.url, other.member, job.id, undefined, 60_000)).status, 'completed');
    assert.equal((await tasks(srv.url, other.member, job.id))[0].cold_start, null, 'twin-b stayed warm');
  });

  it('services start once per runtime, gate readiness with their healthcheck, and are reachable on localhost; cache mounts persist across tasks and revisions', async () => {
    await pushProject(srv.url, acc.member, 'svc', { from: 'examples/service-and-cache' });
    const job = await submit(srv.url, acc.member, { project: 'svc', fan_out: { items: [1, 2, 3] } });
    const done = await waitJob(srv.url, acc.member, job.id, undefined, 120_000);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const res = await results(srv.url, acc.member, job.id);
    const counters = res.results.map((r: any) => r.result.counter).sort();
    assert.deepEqual(counters, [1, 2, 3], 'one service instance counted every task');
    assert.equal(Math.max(...res.results.map((r: any) => r.result.runs_in_cache)), 3);
    const node = (await details(srv.url, acc.member, 'svc')).nodes[0];
    assert.match(node.log_tail, /service counter: healthy/);
    assert.ok(node.log_tail.indexOf('service counter: healthy') > node.log_tail.indexOf('init record init time'), 'init runs before services');

    // A new revision: a new runtime (the service counts from 1 again), the same cache.
    await pushProject(srv.url, acc.member, 'svc', { from: 'examples/service-and-cache', files: { 'NOTES.txt': 'revision 2\n' } });
    const second = await submit(srv.url, acc.member, { project: 'svc', payload: { again: true } });
    await waitJob(srv.url, acc.member, second.id, undefined, 120_000);
    const [task] = await tasks(srv.url, acc.member, second.id);
    assert.equal(task.status, 'completed', JSON.stringify(task));
    assert.equal(task.result.counter, 1);
    assert.equal(task.result.runs_in_cache, 4, 'the cache mount kept the first revision\'s files');
  });

  it('a service whose healthcheck never passes fails preparation at services, within ready_timeout_s', async () => {
    await pushProject(srv.url, acc.member, 'unhealthy', {
      manifest: { runtime: { services: [{ name: 'never', command: ['sleep', '600'], scope: 'project', restart: 'never', ready_timeout_s: 2, healthcheck: { command: ['false'] } }] } },
    });
    const started = Date.now();
    const job = await submit(srv.url, acc.member, { project: 'unhealthy', retries: { max_attempts: 1 } });
    const done = await waitJob(srv.url, acc.member, job.id, undefined, 120_000);
    assert.equal(done.status, 'failed');
    assert.ok(Date.now() - started < 60_000);
    const node = (await details(srv.url, acc.member, 'unhealthy')).nodes[0];
    assert.equal(node.phase, 'services');
    assert.equal(node.error.code, 'service_not_ready');
    assert.match(node.error.message, /service "never" was not ready within 2 s/);
  });

  it('data sources are fetched, checked against sha256 and mounted read-only; a wrong digest fails at fetch', async () => {
    const sha256 = createHash('sha256').update(words).digest('hex');
    await pushProject(srv.url, acc.member, 'data', {
      manifest: { data_sources: [{ name: 'words', url: `${filesUrl}/words.txt`, sha256, mount: '/data/words.txt' }] },
    });
    const read = await submit(srv.url, acc.member, { project: 'data', payload: { mode: 'read', path: '/data/words.txt' } });
    await waitJob(srv.url, acc.member, read.id, undefined, 120_000);
    const [task] = await tasks(srv.url, acc.member, read.id);
    assert.equal(task.result.content, words, JSON.stringify(task));
    const write = await submit(srv.url, acc.member, { project: 'data', runner_command: ['sh', '-c', 'echo x >> /data/words.txt'], retries: { max_attempts: 1 } });
    const written = await waitJob(srv.url, acc.member, write.id);
    assert.equal(written.status, 'failed', 'the data source is read-only');

    await pushProject(srv.url, acc.member, 'baddata', {
      manifest: { data_sources: [{ name: 'words', url: `${filesUrl}/words.txt`, sha256: '0'.repeat(64), mount: '/data/words.txt' }] },
    });
    const bad = await submit(srv.url, acc.member, { project: 'baddata', retries: { max_attempts: 1 } });
    assert.equal((await waitJob(srv.url, acc.member, bad.id, undefined, 120_000)).status, 'failed');
    const node = (await details(srv.url, acc.member, 'baddata')).nodes[0];
    assert.equal(node.phase, 'fetch');
    assert.equal(node.error.code, 'data_source_digest_mismatch');
    assert.match(node.error.message, new RegExp(`has sha256 ${sha256}`));
  });
});
