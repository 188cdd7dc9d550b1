/** Operations (SPEC §12): /health, /metrics, /openapi.json, /docs, and graceful SIGTERM. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { testDatabase } from '../helpers/db.js';
import { call, makeAccount } from '../helpers/http.js';
import { ADMIN_TOKEN, spawnServer, startTestServer, type TestServer } from '../helpers/server.js';

describe('operations', () => {
  let srv: TestServer;
  before(async () => { srv = await startTestServer(); });
  after(() => srv.stop());

  it('/health needs no token and names store and runtime', async () => {
    const res = await call(srv.url, 'GET', '/health', { token: null });
    assert.equal(res.status, 200);
    assert.equal(res.body.status, 'ok');
    assert.equal(res.body.version, '0.1.0');
    assert.equal(res.body.store, process.env.COMPUTALOT_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite');
    assert.equal(res.body.runtime.kind, 'process');
    assert.match(res.body.runtime.warning, /host processes/);
    assert.equal(res.body.workers_online, 0);
  });

  it('/openapi.json describes the public routes', async () => {
    const res = await call(srv.url, 'GET', '/openapi.json', { token: null });
    assert.equal(res.status, 200);
    assert.match(res.body.openapi, /^3\./);
    for (const path of ['/api/v1/projects', '/api/v1/projects/{name}/push', '/api/v1/projects/{name}/status/details', '/api/v1/projects/{name}/stream', '/health']) {
      assert.ok(res.body.paths[path], `openapi has ${path}`);
    }
    assert.ok(res.body.paths['/api/v1/projects'].post.requestBody, 'create has a request body schema');
  });

  it('/docs serves the API reference page', async () => {
    const res = await fetch(`${srv.url}/docs/`, { redirect: 'follow' });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /swagger/i);
  });

  it('/metrics answers loopback callers in Prometheus text', async () => {
    await call(srv.url, 'GET', '/api/v1/projects');
    const res = await call(srv.url, 'GET', '/metrics', { token: null });
    assert.equal(res.status, 200);
    assert.match(res.text, /computalot_http_requests_total\{method="GET",route="\/api\/v1\/projects",status="200"\}/);
  });

  it('an unknown route answers 404 route_not_found in the error shape', async () => {
    const res = await call(srv.url, 'GET', '/nope', { token: null });
    assert.equal(res.status, 404);
    assert.equal(res.body.error.code, 'route_not_found');
  });
});

describe('graceful SIGTERM', () => {
  it('finishes the push in flight, refuses new work, and exits 0', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'computalot-term-'));
    const db = await testDatabase();
    const server = await spawnServer({
      COMPUTALOT_DATA_DIR: dataDir, COMPUTALOT_ADMIN_TOKEN: ADMIN_TOKEN, COMPUTALOT_RUNTIME: 'process',
      ...(db.url ? { DATABASE_URL: db.url } : {}),
    }, 'node');
    try {
      const acc = await makeAccount(server.url, 'term');
      assert.equal((await call(server.url, 'POST', '/api/v1/projects', { token: acc.member, json: { name: 'p' } })).status, 201);
      const src = await mkdtemp(join(tmpdir(), 'computalot-term-src-'));
      await writeFile(join(src, 'Dockerfile'), 'FROM scratch\n');
      execFileSync('tar', ['cf', join(src, 'code.tar'), '-C', src, 'Dockerfile']);
      const bytes = await readFile(join(src, 'code.tar'));
      // A body that arrives slowly: half now, half after the signal.
      const req = request(`${server.url}/api/v1/projects/p/push`, {
        method: 'POST', headers: { authorization: `Bearer ${acc.member}`, 'content-length': String(bytes.length) },
      });
      const answered = new Promise<{ status: number; text: string }>((resolve, reject) => {
        req.on('response', (res) => {
          let text = '';
          res.on('data', (d: Buffer) => { text += d.toString(); });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        });
        req.on('error', reject);
      });
      req.write(bytes.subarray(0, 512));
      await sleep(300);
      process.kill(-server.child.pid!, 'SIGTERM');
      await sleep(500);
      const refused = await call(server.url, 'GET', '/api/v1/projects', { token: acc.member }).catch((err: Error) => err);
      if (!(refused instanceof Error)) assert.equal(refused.status, 503);
      req.end(bytes.subarray(512));
      const res = await answered;
      assert.equal(res.status, 201, res.text);
      const code = await new Promise<number | null>((resolve) => {
        if (server.child.exitCode !== null) resolve(server.child.exitCode);
        else server.child.once('exit', resolve);
      });
      assert.equal(code, 0, server.output());
      assert.doesNotMatch(server.output(), new RegExp(acc.member));
      assert.doesNotMatch(server.output(), new RegExp(ADMIN_TOKEN));
      await rm(src, { recursive: true, force: true });
    } finally {
      await server.stop();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
