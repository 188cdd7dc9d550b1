/** Projects over real HTTP (SPEC §3): create, list, get, update, delete, revisions, readiness routes. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

async function tarball(files: Record<string, string>): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'computalot-src-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const out = join(dir, 'code.tar.gz');
  execFileSync('tar', ['czf', out, '-C', dir, ...Object.keys(files)]);
  return readFile(out);
}

const manifest = JSON.stringify({ version: 1, runtime: { kind: 'oci', sandbox: 'gvisor', workdir: '/workspace' }, entrypoint: { command: ['python3', 'script.py'] } });

describe('projects API', () => {
  let srv: TestServer;
  let acc: TestAccount;
  const as = (method: string, path: string, opts: Parameters<typeof call>[3] = {}) => call(srv.url, method, path, { token: acc.member, ...opts });

  before(async () => {
    srv = await startTestServer();
    acc = await makeAccount(srv.url, 'projects-test');
  });
  after(() => srv.stop());

  it('creates a project and answers the project object', async () => {
    const res = await as('POST', '/api/v1/projects', { json: { name: 'my-project', remote_dir: '/root/my-project', env: { A: '1' } } });
    assert.equal(res.status, 201);
    assert.equal(res.body.name, 'my-project');
    assert.equal(res.body.remote_dir, '/root/my-project');
    assert.deepEqual(res.body.env, { A: '1' });
    assert.equal(res.body.content_hash, null);
    assert.equal(res.body.revision, null);
    assert.equal(res.body.can_accept_new_jobs, false);
    assert.equal(res.body.ready_for_jobs, false);
    assert.equal(typeof res.body.status_message, 'string');
    for (const field of ['created_at', 'updated_at', 'published_at', 'description']) assert.ok(field in res.body, field);
  });

  it('answers 409 project_exists for a taken name', async () => {
    const res = await as('POST', '/api/v1/projects', { json: { name: 'my-project' } });
    assert.equal(res.status, 409);
    assert.equal(res.body.error.code, 'project_exists');
  });

  it('answers 422 with JSON paths for invalid bodies', async () => {
    const res = await as('POST', '/api/v1/projects', { json: { name: 'Bad Name!', remote_dir: 'relative', env: { A: 1 } } });
    assert.equal(res.status, 422);
    assert.equal(res.body.error.code, 'validation_failed');
    const paths = res.body.error.details.problems.map((p: { path: string }) => p.path).sort();
    assert.deepEqual(paths, ['/env/A', '/name', '/remote_dir']);
    const missing = await as('POST', '/api/v1/projects', { json: {} });
    assert.equal(missing.status, 422);
    assert.equal(missing.body.error.details.problems[0].path, '/name');
  });

  it('answers 400 invalid_json for a body that is not JSON', async () => {
    const res = await as('POST', '/api/v1/projects', { body: '{"name": ', headers: { 'content-type': 'application/json' } });
    assert.equal(res.status, 400);
    assert.equal(res.body.error.code, 'invalid_json');
  });

  it('lists with pages and gets by name', async () => {
    for (const name of ['a-1', 'a-2', 'a-3']) assert.equal((await as('POST', '/api/v1/projects', { json: { name } })).status, 201);
    const first = await as('GET', '/api/v1/projects?limit=2');
    assert.equal(first.status, 200);
    assert.deepEqual(first.body.projects.map((p: { name: string }) => p.name), ['a-1', 'a-2']);
    const second = await as('GET', `/api/v1/projects?limit=2&cursor=${first.body.next_cursor}`);
    assert.deepEqual(second.body.projects.map((p: { name: string }) => p.name), ['a-3', 'my-project']);
    assert.equal(second.body.next_cursor, null);
    const bad = await as('GET', '/api/v1/projects?cursor=garbage!!');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_cursor');
    assert.equal((await as('GET', '/api/v1/projects/a-2')).body.name, 'a-2');
    const missing = await as('GET', '/api/v1/projects/nope');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.error.code, 'project_not_found');
  });

  it('updates metadata only; anything else is 400', async () => {
    const ok = await as('PUT', '/api/v1/projects/a-1', { json: { description: 'hello', env: { X: 'y' } } });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.description, 'hello');
    assert.deepEqual(ok.body.env, { X: 'y' });
    const bad = await as('PUT', '/api/v1/projects/a-1', { json: { name: 'renamed', description: 'x' } });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'unknown_field');
    assert.deepEqual(bad.body.error.details.fields, ['name']);
    assert.equal((await as('GET', '/api/v1/projects/a-1')).body.description, 'hello');
  });

  it('tells readiness truthfully without workers', async () => {
    const push = await as('POST', '/api/v1/projects/my-project/push', {
      body: await tarball({ Dockerfile: 'FROM scratch\n', 'computalot.project.json': manifest, 'script.py': 'print(1)\n' }),
    });
    assert.equal(push.status, 201);
    const status = await as('GET', '/api/v1/projects/my-project/status');
    assert.equal(status.status, 200);
    assert.equal(status.body.revision, 1);
    assert.equal(status.body.can_accept_new_jobs, true);
    assert.equal(status.body.ready_for_jobs, false);
    assert.match(status.body.status_message, /next job will .*cold-start/);
    assert.deepEqual(status.body.workers, { eligible: 0, warm: 0, initializing: 0, failed: 0, cold: 0 });
    assert.deepEqual(status.body.jobs, { queued: 0, running: 0 });
    const details = await as('GET', '/api/v1/projects/my-project/status/details');
    assert.deepEqual(details.body.nodes, []);
    assert.equal(typeof details.body.recommended_action, 'string');
    const init = await as('POST', '/api/v1/projects/my-project/init', { json: {} });
    assert.equal(init.status, 202);
    assert.deepEqual(init.body, { name: 'my-project', content_hash: push.body.content_hash, targeted_workers: 0, already_warm: 0 });
    const inv = await as('POST', '/api/v1/projects/my-project/invalidate');
    assert.deepEqual(inv.body, { name: 'my-project', invalidated: true, content_hash: push.body.content_hash });
    assert.notEqual((await as('GET', '/api/v1/projects/my-project/status')).body.invalidated_at, null);
    const cq = await as('PUT', '/api/v1/projects/my-project/cancel-queued');
    assert.deepEqual(cq.body, { cancelled_jobs: 0, cancelled_tasks: 0 });
  });

  it('answers 409 project_not_pushed for /init before any push', async () => {
    const res = await as('POST', '/api/v1/projects/a-3/init', { json: {} });
    assert.equal(res.status, 409);
    assert.equal(res.body.error.code, 'project_not_pushed');
  });

  it('keeps the revision history newest first', async () => {
    await as('POST', '/api/v1/projects/my-project/push', {
      body: await tarball({ Dockerfile: 'FROM scratch\n', 'computalot.project.json': manifest, 'script.py': 'print(2)\n' }),
    });
    const res = await as('GET', '/api/v1/projects/my-project/revisions');
    assert.deepEqual(res.body.revisions.map((r: { revision: number; active: boolean }) => [r.revision, r.active]), [[2, true], [1, false]]);
  });

  it('deletes a project and its tarballs', async () => {
    const res = await as('DELETE', '/api/v1/projects/my-project');
    assert.equal(res.status, 204);
    assert.equal((await as('GET', '/api/v1/projects/my-project')).status, 404);
    const blobs = execFileSync('find', [join(srv.dataDir, 'blobs'), '-type', 'f']).toString().trim();
    assert.equal(blobs, '');
  });
});
