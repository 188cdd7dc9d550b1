/**
 * The authorisation matrix (SPEC §2, §11): every /api/v1 route × every kind of caller.
 *
 * One row per route in ROUTES; the columns are the callers: no token, an unknown flk_ token, a revoked key,
 * a key of another account, a viewer key of the owning account, a worker token, and no token on a
 * percent-encoded path (the router decodes `%61` to `a`, so auth must not key on the raw URL). Every
 * refusal is checked for its status, its `error.code` and the one error shape. A completeness check makes
 * sure every route the server registers (source and OpenAPI document) has a row, and positive controls
 * prove each row's path and body would succeed for a caller allowed to use it, so no refusal here is an
 * accident of a broken path.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { storeKind } from '../helpers/db.js';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { ADMIN_TOKEN, ROOT, startTestServer, type TestServer } from '../helpers/server.js';

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/**
 * What the route reaches: a project or a job of the owner's account (another account must get 404 as if
 * it did not exist), the caller's own account (another account sees only its own), or the admin API.
 */
type Scope = 'project' | 'job' | 'account' | 'admin';

interface Ctx {
  base: string;
  owner: TestAccount;
  other: TestAccount;
  /** The owner's project every project row works on (exists only in the owner's account). */
  project: string;
  /** A key in the owner's project. */
  kvKey: string;
  /** A job of the owner's project (queued: the test server has no workers). */
  job: string;
  /** The owner's member key and an admin key, both revoked. */
  revokedMember: string;
  revokedAdmin: string;
  worker: string;
  workerTokenId: string;
  tarball: Buffer;
  /** Disposable resources for destructive rows, made by their `prepare`. */
  doomedProject: string;
  doomedKvKey: string;
  doomedKeyId: string;
  doomedWorkerTokenId: string;
  doomedJob: string;
  unique(): string;
}

interface Send { json?: unknown; body?: Buffer; headers?: Record<string, string> }

interface Row {
  method: Method;
  /** The route exactly as registered, prefix included (`:param`, `*`). */
  route: string;
  scope: Scope;
  /** The concrete path; by default `:name` is the owner's project and `*` the owner's KV key. */
  path?: (c: Ctx) => string;
  /** A body valid for this route, so a refusal can only come from who is asking. */
  send?: (c: Ctx) => Send;
  /** Status of the positive control (owner's viewer for GET, member for writes, admin for admin routes). */
  ok: number;
  /** Makes what the positive control consumes (disposable project, key, token). */
  prepare?: (c: Ctx) => Promise<void>;
  /** The answer is an SSE stream: read the headers, then abort. */
  sse?: boolean;
  /**
   * What another account gets, when not a plain 404 `project_not_found` / `job_not_found`. Whatever it is,
   * it must be the same answer as for a resource that exists in no account.
   */
  crossAccount?: (answer: Probe) => void;
}

const PROJECT = 'owned-proj';
const json = (value: unknown): Send => ({ json: value });
const jobBody = (project: string) => ({
  type: 'structured_runner', runner_command: ['python3', 'script.py'], payload: { test: true }, project, timeout_s: 120,
});

/** The same context with every resource of the owner replaced by one that exists in no account. */
function ghostOf(c: Ctx): Ctx {
  return {
    ...c, project: 'ghost-proj', doomedProject: 'ghost-doomed', job: 'job_01ARZ3NDEKTSV4RRFFQ69G5FAV',
    doomedJob: 'job_01ARZ3NDEKTSV4RRFFQ69G5FAW',
  };
}

const ROUTES: Row[] = [
  // projects (SPEC §3)
  { method: 'POST', route: '/api/v1/projects', scope: 'account', send: (c) => json({ name: `made-${c.unique()}` }), ok: 201 },
  { method: 'GET', route: '/api/v1/projects', scope: 'account', ok: 200 },
  { method: 'GET', route: '/api/v1/projects/:name', scope: 'project', ok: 200 },
  { method: 'PUT', route: '/api/v1/projects/:name', scope: 'project', send: () => json({ description: 'changed by the matrix' }), ok: 200 },
  { method: 'GET', route: '/api/v1/projects/:name/revisions', scope: 'project', ok: 200 },
  { method: 'POST', route: '/api/v1/projects/:name/push', scope: 'project', send: (c) => ({ body: c.tarball }), ok: 200 },
  { method: 'POST', route: '/api/v1/projects/:name/init', scope: 'project', send: () => json({}), ok: 202 },
  { method: 'POST', route: '/api/v1/projects/:name/invalidate', scope: 'project', send: () => json({}), ok: 200 },
  { method: 'PUT', route: '/api/v1/projects/:name/cancel-queued', scope: 'project', send: () => json({}), ok: 200 },
  { method: 'GET', route: '/api/v1/projects/:name/status', scope: 'project', ok: 200 },
  { method: 'GET', route: '/api/v1/projects/:name/status/details', scope: 'project', ok: 200 },
  // KV (SPEC §9)
  { method: 'GET', route: '/api/v1/projects/:name/kv', scope: 'project', path: (c) => `/api/v1/projects/${c.project}/kv?prefix=shared`, ok: 200 },
  { method: 'GET', route: '/api/v1/projects/:name/kv/*', scope: 'project', ok: 200 },
  { method: 'PUT', route: '/api/v1/projects/:name/kv/*', scope: 'project', send: () => json({ written: 'by the matrix' }), ok: 200 },
  {
    method: 'DELETE', route: '/api/v1/projects/:name/kv/*', scope: 'project', ok: 204,
    path: (c) => `/api/v1/projects/${c.project}/kv/${encodeURIComponent(c.doomedKvKey)}`,
    prepare: async (c) => {
      const put = await call(c.base, 'PUT', `/api/v1/projects/${c.project}/kv/${encodeURIComponent(c.doomedKvKey)}`, { token: c.owner.member, json: 1 });
      assert.equal(put.status, 200, put.text);
    },
  },
  // streams (SPEC §10)
  { method: 'GET', route: '/api/v1/projects/:name/stream', scope: 'project', sse: true, ok: 200 },
  // jobs (SPEC §6)
  { method: 'POST', route: '/api/v1/jobs', scope: 'project', path: () => '/api/v1/jobs', send: (c) => json(jobBody(c.project)), ok: 201 },
  {
    method: 'POST', route: '/api/v1/jobs/batch', scope: 'project', path: () => '/api/v1/jobs/batch', send: (c) => json({ jobs: [jobBody(c.project)] }), ok: 200,
    crossAccount: (answer) => {
      assert.equal(answer.status, 200, answer.text);
      assert.equal(answer.body.jobs[0].error.code, 'project_not_found', answer.text);
    },
  },
  { method: 'GET', route: '/api/v1/jobs', scope: 'project', path: (c) => `/api/v1/jobs?project=${c.project}`, ok: 200 },
  { method: 'GET', route: '/api/v1/jobs/:id', scope: 'job', ok: 200 },
  { method: 'GET', route: '/api/v1/jobs/:id/tasks', scope: 'job', ok: 200 },
  { method: 'GET', route: '/api/v1/jobs/:id/output', scope: 'job', ok: 200 },
  { method: 'GET', route: '/api/v1/jobs/:id/stream', scope: 'job', sse: true, ok: 200 },
  { method: 'GET', route: '/api/v1/results/:job_id', scope: 'job', ok: 200 },
  {
    method: 'POST', route: '/api/v1/jobs/:id/cancel', scope: 'job', path: (c) => `/api/v1/jobs/${c.doomedJob}/cancel`, send: () => json({}), ok: 200,
    prepare: async (c) => { c.doomedJob = await submitJob(c); },
  },
  // last of the project rows: deletes a project of its own
  {
    method: 'DELETE', route: '/api/v1/projects/:name', scope: 'project', ok: 204,
    path: (c) => `/api/v1/projects/${c.doomedProject}`,
    prepare: async (c) => {
      const made = await call(c.base, 'POST', '/api/v1/projects', { token: c.owner.member, json: { name: c.doomedProject } });
      assert.ok(made.status === 201 || made.status === 409, made.text);
    },
  },
  // admin (SPEC §11)
  { method: 'POST', route: '/api/v1/admin/accounts', scope: 'admin', send: (c) => json({ name: `acct-${c.unique()}` }), ok: 201 },
  { method: 'GET', route: '/api/v1/admin/accounts', scope: 'admin', ok: 200 },
  { method: 'PUT', route: '/api/v1/admin/accounts/:id/quotas', scope: 'admin', path: (c) => `/api/v1/admin/accounts/${c.owner.id}/quotas`, send: () => json({}), ok: 200 },
  { method: 'POST', route: '/api/v1/admin/accounts/:id/keys', scope: 'admin', path: (c) => `/api/v1/admin/accounts/${c.owner.id}/keys`, send: () => json({ role: 'viewer' }), ok: 201 },
  { method: 'GET', route: '/api/v1/admin/accounts/:id/keys', scope: 'admin', path: (c) => `/api/v1/admin/accounts/${c.owner.id}/keys`, ok: 200 },
  {
    method: 'DELETE', route: '/api/v1/admin/keys/:id', scope: 'admin', path: (c) => `/api/v1/admin/keys/${c.doomedKeyId}`, ok: 204,
    prepare: async (c) => { c.doomedKeyId = (await newKey(c.base, c.owner.id, 'viewer')).id; },
  },
  { method: 'POST', route: '/api/v1/admin/worker-tokens', scope: 'admin', send: (c) => json({ name: `wt-${c.unique()}` }), ok: 201 },
  {
    method: 'DELETE', route: '/api/v1/admin/worker-tokens/:id', scope: 'admin', path: (c) => `/api/v1/admin/worker-tokens/${c.doomedWorkerTokenId}`, ok: 204,
    prepare: async (c) => { c.doomedWorkerTokenId = (await newWorkerToken(c.base)).id; },
  },
  { method: 'GET', route: '/api/v1/admin/workers', scope: 'admin', ok: 200 },
];

const label = (row: Row) => `${row.method} ${row.route}`;

function pathOf(row: Row, c: Ctx): string {
  if (row.path) return row.path(c);
  return row.route.replace(':name', c.project).replace('*', encodeURIComponent(c.kvKey))
    .replace(':id', c.job).replace(':job_id', c.job);
}

async function submitJob(c: Ctx): Promise<string> {
  const res = await call(c.base, 'POST', '/api/v1/jobs', { token: c.owner.member, json: jobBody(c.project) });
  assert.equal(res.status, 201, res.text);
  return res.body.id as string;
}

interface Probe { status: number; body: any; text: string; contentType: string }

/** One request; an SSE answer is cut after its headers (it never ends by itself). */
async function probe(base: string, method: Method | 'HEAD', path: string, token: string | null, send: Send = {}): Promise<Probe> {
  const headers: Record<string, string> = { ...(send.headers ?? {}) };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: BodyInit | undefined;
  if (send.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(send.json);
  } else if (send.body !== undefined) {
    body = new Uint8Array(send.body);
  }
  const abort = new AbortController();
  const res = await fetch(base + path, { method, headers, body, signal: abort.signal });
  const contentType = res.headers.get('content-type') ?? '';
  if (contentType.startsWith('text/event-stream')) {
    abort.abort();
    return { status: res.status, body: null, text: '', contentType };
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, text, contentType };
}

/** Status, code and the one error shape `{error: {code, message, details}}` (SPEC §2). */
function assertError(answer: Probe, status: number, code: string, what: string): void {
  assert.equal(answer.status, status, `${what}: expected ${status} ${code}, got ${answer.status} ${answer.text}`);
  assert.match(answer.contentType, /^application\/json/, `${what}: error content type`);
  assert.ok(answer.body && typeof answer.body === 'object', `${what}: error body is JSON: ${answer.text}`);
  assert.deepEqual(Object.keys(answer.body), ['error'], `${what}: error body has only "error": ${answer.text}`);
  const error = answer.body.error;
  assert.deepEqual(Object.keys(error).sort(), ['code', 'details', 'message'], `${what}: error fields: ${answer.text}`);
  assert.equal(error.code, code, `${what}: error code`);
  assert.equal(typeof error.message, 'string', `${what}: message is a string`);
  assert.ok(error.message.length > 0, `${what}: message is not empty`);
  assert.ok(error.details && typeof error.details === 'object' && !Array.isArray(error.details), `${what}: details is an object`);
}

async function newKey(base: string, accountId: string, role: string): Promise<{ id: string; key: string }> {
  const res = await call(base, 'POST', `/api/v1/admin/accounts/${accountId}/keys`, { json: { role } });
  assert.equal(res.status, 201, res.text);
  return { id: res.body.id, key: res.body.key };
}

async function newWorkerToken(base: string): Promise<{ id: string; token: string }> {
  const res = await call(base, 'POST', '/api/v1/admin/worker-tokens', { json: { name: 'matrix worker' } });
  assert.equal(res.status, 201, res.text);
  assert.match(res.body.token, /^wkr_/);
  return { id: res.body.id, token: res.body.token };
}

async function makeTarball(): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'computalot-tarball-'));
  try {
    await writeFile(join(dir, 'Dockerfile'), 'FROM python:3.12-slim\nCOPY . /workspace\n');
    await writeFile(join(dir, 'computalot.project.json'), JSON.stringify({
      version: 1, runtime: { kind: 'oci', sandbox: 'gvisor', workdir: '/workspace' }, entrypoint: { command: ['python3', 'script.py'] },
    }));
    await writeFile(join(dir, 'script.py'), 'print("hello from the auth matrix")\n');
    execFileSync('tar', ['czf', join(dir, 'code.tar.gz'), '-C', dir, 'Dockerfile', 'computalot.project.json', 'script.py']);
    return await readFile(join(dir, 'code.tar.gz'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `/api/v1/...` with one letter percent-encoded: the same route for the router, another string for a prefix check. */
const encodedPrefix = (path: string) => path.replace(/^\/api\/v1\//, '/%61pi/v1/');

describe(`auth matrix (${storeKind()})`, { timeout: 180_000 }, () => {
  let server: TestServer;
  let c: Ctx;

  before(async () => {
    server = await startTestServer();
    const base = server.url;
    const owner = await makeAccount(base, 'matrix-owner');
    const other = await makeAccount(base, 'matrix-other');
    const revokedMember = await newKey(base, owner.id, 'member');
    const revokedAdmin = await newKey(base, owner.id, 'admin');
    const worker = await newWorkerToken(base);
    let n = 0;
    c = {
      base, owner, other, project: PROJECT, kvKey: 'shared/key one ✓', revokedMember: revokedMember.key,
      revokedAdmin: revokedAdmin.key, worker: worker.token, workerTokenId: worker.id, tarball: await makeTarball(),
      doomedProject: 'doomed-proj', doomedKvKey: 'doomed/key', doomedKeyId: '', doomedWorkerTokenId: '',
      job: '', doomedJob: '', unique: () => `${process.pid}-${(n += 1)}`,
    };

    const made = await call(base, 'POST', '/api/v1/projects', { token: owner.member, json: { name: PROJECT, description: 'original' } });
    assert.equal(made.status, 201, made.text);
    const pushed = await call(base, 'POST', `/api/v1/projects/${PROJECT}/push`, { token: owner.member, body: c.tarball });
    assert.equal(pushed.status, 201, pushed.text);
    const put = await call(base, 'PUT', `/api/v1/projects/${PROJECT}/kv/${encodeURIComponent(c.kvKey)}`, { token: owner.member, json: { original: true } });
    assert.equal(put.status, 200, put.text);
    c.job = await submitJob(c);

    // The revoked keys work first (so they are cached as valid), then are revoked: revocation must still win.
    assert.equal((await call(base, 'GET', '/api/v1/projects', { token: revokedMember.key })).status, 200);
    assert.equal((await call(base, 'GET', '/api/v1/admin/workers', { token: revokedAdmin.key })).status, 200);
    for (const key of [revokedMember, revokedAdmin]) {
      const res = await call(base, 'DELETE', `/api/v1/admin/keys/${key.id}`);
      assert.equal(res.status, 204, res.text);
    }
    // Disposable resources exist during the refusal columns too, so refusals are about callers, not absence.
    for (const row of ROUTES) await row.prepare?.(c);
  });

  after(async () => {
    await server?.stop();
  });

  describe('every registered /api/v1 route has a row', () => {
    it('matches the routes in src/api/routes/*.ts', async () => {
      const dir = join(ROOT, 'src/api/routes');
      const registered = new Set<string>();
      for (const file of await readdir(dir)) {
        if (!file.endsWith('.ts') || file === 'ops.ts') continue; // ops.ts holds the un-prefixed public routes
        const source = await readFile(join(dir, file), 'utf8');
        for (const m of source.matchAll(/\bapp\.(get|post|put|delete|patch)\(\s*'([^']+)'/g)) {
          registered.add(`${m[1]!.toUpperCase()} /api/v1${m[2]}`);
        }
      }
      assert.ok(registered.size > 0, 'found no routes in src/api/routes');
      assert.deepEqual([...registered].sort(), ROUTES.map(label).sort(), 'add a row to ROUTES for every new route');
    });

    it('matches the /api/v1 paths of the OpenAPI document', async () => {
      const doc = await probe(c.base, 'GET', '/openapi.json', null);
      assert.equal(doc.status, 200);
      const documented: string[] = [];
      for (const [path, ops] of Object.entries(doc.body.paths as Record<string, Record<string, unknown>>)) {
        if (!path.startsWith('/api/v1')) continue;
        const route = path.replace(/\{\*\}/g, '*').replace(/\{(\w+)\}/g, ':$1');
        for (const method of Object.keys(ops)) documented.push(`${method.toUpperCase()} ${route}`);
      }
      assert.deepEqual(documented.sort(), ROUTES.map(label).sort());
    });
  });

  describe('public operations routes', () => {
    it('/health answers without a token', async () => {
      const res = await probe(c.base, 'GET', '/health', null);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.status, 'ok');
      for (const field of ['status', 'version', 'store', 'runtime', 'workers_online']) assert.ok(field in res.body, field);
    });

    it('/openapi.json answers without a token', async () => {
      const res = await probe(c.base, 'GET', '/openapi.json', null);
      assert.equal(res.status, 200);
      assert.ok(res.body.openapi);
      assert.ok(res.body.paths['/api/v1/projects']);
    });

    it('/health, /openapi.json and /docs ignore a bad token', async () => {
      for (const path of ['/health', '/openapi.json', '/docs']) {
        const res = await probe(c.base, 'GET', path, 'flk_this_key_was_never_issued_0123456789ab');
        assert.ok(res.status === 200 || res.status === 302, `${path}: ${res.status} ${res.text.slice(0, 200)}`);
      }
    });

    it('/metrics answers a loopback caller without a token', async () => {
      const res = await probe(c.base, 'GET', '/metrics', null);
      assert.equal(res.status, 200, res.text);
      assert.match(res.contentType, /^text\/plain/);
      assert.match(res.text, /computalot_http_requests_total/);
    });

    it('/metrics from a non-loopback address needs an admin key', async (t) => {
      const address = Object.values(networkInterfaces()).flat()
        .find((i) => i && !i.internal && i.family === 'IPv4')?.address;
      if (!address) {
        t.skip('this machine has no non-loopback IPv4 address');
        return;
      }
      const remote = await startTestServer({ HOST: address });
      try {
        const base = remote.url;
        assert.ok(!base.includes('127.0.0.1'), base);
        const account = await makeAccount(base, 'metrics-reader');
        assertError(await probe(base, 'GET', '/metrics', null), 401, 'unauthorized', 'no token from outside');
        assertError(await probe(base, 'GET', '/metrics', 'flk_this_key_was_never_issued_0123456789ab'), 401, 'unauthorized', 'unknown token from outside');
        const admin = await probe(base, 'GET', '/metrics', ADMIN_TOKEN);
        assert.equal(admin.status, 200, admin.text);
        assert.match(admin.text, /computalot_http_requests_total/);
        assert.equal((await probe(base, 'GET', '/health', null)).status, 200);
        // BUG: src/api/routes/ops.ts — a valid key whose role is too weak gets 401 unauthorized; SPEC §2 says
        // role too weak → 403 (forbidden). Answer 401 only when the token is missing or unknown.
        assertError(await probe(base, 'GET', '/metrics', account.member), 403, 'forbidden', 'member key from outside');
      } finally {
        await remote.stop();
      }
    });
  });

  // Phase 1: every refusal. Nothing here may change the owner's state (checked in phase 2).
  for (const row of ROUTES) {
    const read = row.method === 'GET';
    describe(`refusals: ${label(row)}`, () => {
      const send = () => row.send?.(c) ?? {};

      it('no token → 401 unauthorized', async () => {
        assertError(await probe(c.base, row.method, pathOf(row, c), null, send()), 401, 'unauthorized', 'no token');
      });

      it('a malformed Authorization header → 401 unauthorized', async () => {
        const res = await probe(c.base, row.method, pathOf(row, c), null, { ...send(), headers: { authorization: `Token ${c.owner.member}` } });
        assertError(res, 401, 'unauthorized', 'not a Bearer header');
      });

      it('an unknown flk_ token → 401 unauthorized', async () => {
        const res = await probe(c.base, row.method, pathOf(row, c), 'flk_this_key_was_never_issued_0123456789ab', send());
        assertError(res, 401, 'unauthorized', 'unknown token');
      });

      it('an unknown wkr_ token, or a token of no known kind → 401 unauthorized', async () => {
        for (const token of ['wkr_this_token_was_never_issued_01234567', 'not-a-computalot-token']) {
          assertError(await probe(c.base, row.method, pathOf(row, c), token, send()), 401, 'unauthorized', `token ${token}`);
        }
      });

      it('a revoked key → 401 unauthorized', async () => {
        const key = row.scope === 'admin' ? c.revokedAdmin : c.revokedMember;
        assertError(await probe(c.base, row.method, pathOf(row, c), key, send()), 401, 'unauthorized', 'revoked key');
      });

      it('a worker token → 403 forbidden', async () => {
        assertError(await probe(c.base, row.method, pathOf(row, c), c.worker, send()), 403, 'forbidden', 'worker token');
      });

      it('no token on a percent-encoded path → 401 unauthorized (auth may not key on the raw URL)', async () => {
        const res = await probe(c.base, row.method, encodedPrefix(pathOf(row, c)), null, send());
        assertError(res, 401, 'unauthorized', `no token on ${encodedPrefix(pathOf(row, c))}`);
      });

      if (read && !row.sse) {
        it('HEAD with no token → 401', async () => {
          const res = await probe(c.base, 'HEAD', pathOf(row, c), null);
          assert.equal(res.status, 401);
        });
      }

      if (row.scope === 'admin') {
        it('a member key (of another account) → 403 forbidden', async () => {
          assertError(await probe(c.base, row.method, pathOf(row, c), c.other.member, send()), 403, 'forbidden', 'member key on admin route');
        });
        it('a viewer key → 403 forbidden', async () => {
          assertError(await probe(c.base, row.method, pathOf(row, c), c.owner.viewer, send()), 403, 'forbidden', 'viewer key on admin route');
        });
        it('a member key of the account the route names → 403 forbidden', async () => {
          assertError(await probe(c.base, row.method, pathOf(row, c), c.owner.member, send()), 403, 'forbidden', 'owner member on admin route');
        });
        return;
      }

      if (row.scope === 'project' || row.scope === 'job') {
        it('a key of another account → 404, exactly as if the resource did not exist', async () => {
          const ghost = ghostOf(c);
          const names = (x: Ctx) => [x.doomedProject, x.project, x.doomedJob, x.job];
          const anonymise = (text: string, x: Ctx) => names(x).reduce((t, name, i) => t.replaceAll(name, `<resource ${i}>`), text);
          for (const token of [c.other.member, c.other.viewer]) {
            const real = await probe(c.base, row.method, pathOf(row, c), token, row.send?.(c) ?? {});
            const absent = await probe(c.base, row.method, pathOf(row, ghost), token, row.send?.(ghost) ?? {});
            if (token === c.other.viewer && !read) {
              assertError(real, 403, 'forbidden', 'viewer of another account, write');
              continue;
            }
            if (row.crossAccount) {
              row.crossAccount(real);
            } else {
              const code = row.scope === 'job' ? 'job_not_found' : 'project_not_found';
              assertError(real, 404, code, 'another account');
              assertError(absent, 404, code, 'a resource of no account');
            }
            assert.equal(anonymise(real.text, c), anonymise(absent.text, ghost), 'the same answer as for a resource of no account');
          }
        });
      } else {
        it('another account sees and changes only its own', async () => {
          const res = await probe(c.base, row.method, pathOf(row, c), c.other.member, send());
          if (row.method === 'GET') {
            assert.equal(res.status, 200, res.text);
            assert.ok(!res.text.includes(PROJECT) && !res.text.includes(c.doomedProject) && !res.text.includes(c.job), res.text);
          } else {
            assert.equal(res.status, 201, res.text);
          }
        });
      }

      if (read) {
        it(`a viewer key of the owning account → ${row.ok}`, async () => {
          const res = await probe(c.base, row.method, pathOf(row, c), c.owner.viewer, send());
          assert.equal(res.status, row.ok, res.text);
          if (row.sse) assert.match(res.contentType, /^text\/event-stream/);
        });
      } else {
        it('a viewer key of the owning account → 403 forbidden', async () => {
          assertError(await probe(c.base, row.method, pathOf(row, c), c.owner.viewer, send()), 403, 'forbidden', 'viewer write');
        });
      }
    });
  }

  // Phase 2: the refusals above changed nothing of the owner's.
  describe('refused requests changed nothing', () => {
    it('the project, its revisions, its KV and the disposable resources are untouched', async () => {
      const project = await call(c.base, 'GET', `/api/v1/projects/${PROJECT}`, { token: c.owner.viewer });
      assert.equal(project.status, 200);
      assert.equal(project.body.description, 'original');
      assert.equal(project.body.revision, 1);
      const kv = await call(c.base, 'GET', `/api/v1/projects/${PROJECT}/kv/${encodeURIComponent(c.kvKey)}`, { token: c.owner.viewer });
      assert.deepEqual(kv.body, { original: true });
      assert.equal(kv.headers.get('etag'), '"1"');
      const doomedKv = await call(c.base, 'GET', `/api/v1/projects/${PROJECT}/kv/${encodeURIComponent(c.doomedKvKey)}`, { token: c.owner.viewer });
      assert.equal(doomedKv.status, 200);
      assert.equal((await call(c.base, 'GET', `/api/v1/projects/${c.doomedProject}`, { token: c.owner.viewer })).status, 200);
      const keys = await call(c.base, 'GET', `/api/v1/admin/accounts/${c.owner.id}/keys`);
      const doomedKey = keys.body.keys.find((k: { id: string }) => k.id === c.doomedKeyId);
      assert.equal(doomedKey?.revoked_at, null);
      const jobs = await call(c.base, 'GET', `/api/v1/jobs?project=${PROJECT}&limit=500`, { token: c.owner.viewer });
      assert.deepEqual(jobs.body.jobs.map((j: { id: string }) => j.id).sort(), [c.job, c.doomedJob].sort(), 'no job was submitted by a refused caller');
      for (const j of jobs.body.jobs) assert.equal(j.status, 'queued', 'no job was cancelled by a refused caller');
      const accounts = await call(c.base, 'GET', '/api/v1/admin/accounts?limit=500');
      assert.ok(!accounts.body.accounts.some((a: { name: string }) => a.name.startsWith('acct-')), 'no account was created by a refused caller');
    });

    it('the worker token is still valid: user routes refuse it with 403, not 401', async () => {
      assertError(await probe(c.base, 'GET', '/api/v1/projects', c.worker), 403, 'forbidden', 'worker token');
    });
  });

  // Phase 3: positive controls — each row's path and body work for a caller allowed to use them.
  describe('positive controls', () => {
    for (const row of ROUTES) {
      const who = row.scope === 'admin' ? 'admin key' : row.method === 'GET' ? 'viewer key' : 'member key';
      it(`${label(row)} with the owner's ${who} → ${row.ok}`, async () => {
        await row.prepare?.(c);
        const token = row.scope === 'admin' ? ADMIN_TOKEN : row.method === 'GET' ? c.owner.viewer : c.owner.member;
        const res = await probe(c.base, row.method, pathOf(row, c), token, row.send?.(c) ?? {});
        assert.equal(res.status, row.ok, res.text);
        if (row.sse) assert.match(res.contentType, /^text\/event-stream/);
      });
    }

    it('a revoked worker token → 401', async () => {
      const wt = await newWorkerToken(c.base);
      assert.equal((await call(c.base, 'DELETE', `/api/v1/admin/worker-tokens/${wt.id}`)).status, 204);
      assertError(await probe(c.base, 'GET', '/api/v1/projects', wt.token), 401, 'unauthorized', 'revoked worker token');
    });
  });
});
