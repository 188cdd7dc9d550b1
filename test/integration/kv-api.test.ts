/**
 * Project KV over HTTP (SPEC §9): writes and their versions, ETags, compare-and-set, create-only, TTLs,
 * deletes, listing with prefix and pages, percent-encoded keys, every key and value limit, and the
 * kv.updated / kv.deleted events on the project stream (SPEC §10).
 *
 * Two servers: one with the default limits (1 MiB values, 10,000 keys), one with tiny limits so the
 * value and key-count limits are cheap to reach.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventSource } from 'eventsource';
import { storeKind } from '../helpers/db.js';
import { call, makeAccount, type Answer, type TestAccount } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const SMALL_VALUE_LIMIT = 1024;
const SMALL_KEY_LIMIT = 3;
const WAIT_MS = 30_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns a value other than undefined, up to WAIT_MS. */
async function waitFor<T>(what: string, check: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function assertError(res: Answer, status: number, code: string): void {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${res.text}`);
  assert.ok(res.body && typeof res.body === 'object' && res.body.error, `error body: ${res.text}`);
  assert.deepEqual(Object.keys(res.body.error).sort(), ['code', 'details', 'message'], res.text);
  assert.equal(res.body.error.code, code, res.text);
  assert.equal(typeof res.body.error.message, 'string');
  assert.ok(res.body.error.message.length > 0);
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

interface SeenEvent { id: number; type: string; data: Record<string, any> }

const EVENT_TYPES = [
  'project.pushed', 'project.readiness', 'job.created', 'job.status', 'task.status', 'task.progress', 'task.output',
  'job.completed', 'kv.updated', 'kv.deleted', 'stream.reset',
];

/** A project stream read with the `eventsource` package; every named event is kept in arrival order. */
function openStream(base: string, project: string, token: string) {
  const events: SeenEvent[] = [];
  const source = new EventSource(`${base}/api/v1/projects/${project}/stream`, {
    fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } }),
  });
  for (const type of EVENT_TYPES) {
    source.addEventListener(type, (e) => events.push({ id: Number(e.lastEventId), type, data: JSON.parse(e.data) }));
  }
  const opened = new Promise<void>((resolve, reject) => {
    source.addEventListener('open', () => resolve(), { once: true });
    source.addEventListener('error', (e) => reject(new Error(`stream failed to open: ${e.message ?? 'error'}`)), { once: true });
  });
  return { events, opened, close: () => source.close() };
}

describe(`KV API (${storeKind()})`, { timeout: 180_000 }, () => {
  let server: TestServer;
  let small: TestServer;
  let acct: TestAccount;
  let smallAcct: TestAccount;
  const P = 'kv-proj';
  const kv = (key: string) => `/api/v1/projects/${P}/kv/${encodeURIComponent(key)}`;
  const put = (key: string, value: unknown, headers: Record<string, string> = {}, query = '') =>
    call(server.url, 'PUT', kv(key) + query, { token: acct.member, json: value, headers });
  const get = (key: string) => call(server.url, 'GET', kv(key), { token: acct.viewer });
  const del = (key: string) => call(server.url, 'DELETE', kv(key), { token: acct.member });
  const list = (query: string) => call(server.url, 'GET', `/api/v1/projects/${P}/kv${query}`, { token: acct.viewer });

  before(async () => {
    server = await startTestServer();
    small = await startTestServer({ COMPUTALOT_KV_MAX_VALUE_BYTES: String(SMALL_VALUE_LIMIT), COMPUTALOT_KV_MAX_KEYS: String(SMALL_KEY_LIMIT) });
    acct = await makeAccount(server.url, 'kv-user');
    smallAcct = await makeAccount(small.url, 'kv-small');
    for (const [s, a] of [[server, acct], [small, smallAcct]] as const) {
      const res = await call(s.url, 'POST', '/api/v1/projects', { token: a.member, json: { name: P } });
      assert.equal(res.status, 201, res.text);
    }
  });

  after(async () => {
    await server?.stop();
    await small?.stop();
  });

  describe('writes, reads and versions', () => {
    it('PUT answers 200 {key, version, updated_at} and counts versions up from 1', async () => {
      const first = await put('counter', { n: 1 });
      assert.equal(first.status, 200, first.text);
      assert.deepEqual(Object.keys(first.body).sort(), ['key', 'updated_at', 'version']);
      assert.equal(first.body.key, 'counter');
      assert.equal(first.body.version, 1);
      assert.match(first.body.updated_at, RFC3339);
      const second = await put('counter', { n: 2 });
      assert.equal(second.status, 200, second.text);
      assert.equal(second.body.version, 2);
      assert.ok(second.body.updated_at >= first.body.updated_at);
    });

    it('GET answers the stored JSON value with ETag: "<version>"', async () => {
      const res = await get('counter');
      assert.equal(res.status, 200, res.text);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.equal(res.headers.get('etag'), '"2"');
      assert.deepEqual(res.body, { n: 2 });
    });

    it('values of every JSON type round-trip', async () => {
      const values: Record<string, unknown> = {
        object: { nested: { list: [1, 'two', null, false], text: 'ünïcødé ✓ 😀', empty: {} }, n: -1.5e-7 },
        'empty-object': {},
        array: [1, [2, [3]], { a: null }, 'x', true],
        'empty-array': [],
        string: 'a "quoted" string with \\ backslash, \n newline and \u0001 control',
        'empty-string': '',
        integer: 42,
        zero: 0,
        negative: -17,
        float: 3.141592653589793,
        big: 9007199254740991,
        true: true,
        false: false,
        null: null,
      };
      for (const [key, value] of Object.entries(values)) {
        const res = await put(`types/${key}`, value);
        assert.equal(res.status, 200, `${key}: ${res.text}`);
      }
      for (const [key, value] of Object.entries(values)) {
        const res = await get(`types/${key}`);
        assert.equal(res.status, 200, `${key}: ${res.text}`);
        assert.deepEqual(JSON.parse(res.text), value, key);
      }
    });

    it('takes any Content-Type as long as the body is JSON', async () => {
      const res = await call(server.url, 'PUT', kv('plain-text-type'), { token: acct.member, body: '{"ok":true}', headers: { 'content-type': 'text/plain' } });
      assert.equal(res.status, 200, res.text);
      assert.deepEqual((await get('plain-text-type')).body, { ok: true });
    });

    it('a body that is not JSON → 400 invalid_json; an empty body → 400 invalid_json', async () => {
      for (const body of ['not json', '{"a":', "{'single': 'quotes'}", 'undefined']) {
        const res = await call(server.url, 'PUT', kv('bad-json'), { token: acct.member, body, headers: { 'content-type': 'application/json' } });
        assertError(res, 400, 'invalid_json');
      }
      assertError(await call(server.url, 'PUT', kv('bad-json'), { token: acct.member }), 400, 'invalid_json');
      assertError(await call(server.url, 'PUT', kv('bad-json'), { token: acct.member, body: '', headers: { 'content-type': 'application/json' } }), 400, 'invalid_json');
      assertError(await get('bad-json'), 404, 'kv_key_not_found');
    });

    it('GET of an absent key → 404 kv_key_not_found', async () => {
      assertError(await get('never-written'), 404, 'kv_key_not_found');
    });
  });

  describe('conditional writes', () => {
    it('If-Match with the current ETag compares and sets; a stale one → 412 kv_version_mismatch', async () => {
      const first = await put('cas', 'a');
      assert.equal(first.body.version, 1);
      const etag = (await get('cas')).headers.get('etag')!;
      assert.equal(etag, '"1"');
      const ok = await put('cas', 'b', { 'if-match': etag });
      assert.equal(ok.status, 200, ok.text);
      assert.equal(ok.body.version, 2);
      assertError(await put('cas', 'c', { 'if-match': etag }), 412, 'kv_version_mismatch');
      assertError(await put('cas', 'c', { 'if-match': '"7"' }), 412, 'kv_version_mismatch');
      const current = await get('cas');
      assert.equal(current.body, 'b', 'a refused write changes nothing');
      assert.equal(current.headers.get('etag'), '"2"');
      // the version without quotes is accepted too
      const bare = await put('cas', 'd', { 'if-match': '2' });
      assert.equal(bare.status, 200, bare.text);
      assert.equal(bare.body.version, 3);
    });

    it('If-Match on an absent key → 412 kv_version_mismatch, and nothing is created', async () => {
      assertError(await put('cas-absent', 1, { 'if-match': '"1"' }), 412, 'kv_version_mismatch');
      assertError(await get('cas-absent'), 404, 'kv_key_not_found');
    });

    it('If-Match that is not a version → 400', async () => {
      assertError(await put('cas', 1, { 'if-match': 'not-a-version' }), 400, 'invalid_request');
    });

    it('If-None-Match: * creates only; an existing key → 412 kv_key_exists', async () => {
      const created = await put('create-only', { first: true }, { 'if-none-match': '*' });
      assert.equal(created.status, 200, created.text);
      assert.equal(created.body.version, 1);
      assertError(await put('create-only', { second: true }, { 'if-none-match': '*' }), 412, 'kv_key_exists');
      assert.deepEqual((await get('create-only')).body, { first: true });
      assert.equal((await del('create-only')).status, 204);
      const again = await put('create-only', { third: true }, { 'if-none-match': '*' });
      assert.equal(again.status, 200, again.text);
      assert.equal(again.body.version, 1, 'a deleted key starts again at version 1');
    });

    it('concurrent If-None-Match: * writers: exactly one wins', async () => {
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => put('race-create', { writer: i }, { 'if-none-match': '*' })));
      const statuses = answers.map((a) => a.status).sort();
      assert.deepEqual(statuses, [200, 412, 412, 412, 412, 412, 412, 412], answers.map((a) => a.text).join('\n'));
      for (const a of answers.filter((x) => x.status === 412)) assert.equal(a.body.error.code, 'kv_key_exists');
    });

    it('concurrent If-Match writers on one version: exactly one wins', async () => {
      await put('race-cas', 0);
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => put('race-cas', i + 1, { 'if-match': '"1"' })));
      const won = answers.filter((a) => a.status === 200);
      assert.equal(won.length, 1, answers.map((a) => `${a.status} ${a.text}`).join('\n'));
      assert.equal(won[0]!.body.version, 2);
      for (const a of answers.filter((x) => x.status !== 200)) assertError(a, 412, 'kv_version_mismatch');
    });

    it('concurrent plain writers all succeed with distinct versions', async () => {
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => put('race-plain', i)));
      for (const a of answers) assert.equal(a.status, 200, a.text);
      assert.deepEqual(answers.map((a) => a.body.version).sort((x, y) => x - y), [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal((await get('race-plain')).headers.get('etag'), '"8"');
    });
  });

  describe('expiry', () => {
    it('?ttl_s=1 makes a key expire: it reads as absent and leaves the listing', async () => {
      const res = await put('ttl/short', { soon: 'gone' }, {}, '?ttl_s=1');
      assert.equal(res.status, 200, res.text);
      const before = await list('?prefix=ttl/');
      const listed = before.body.keys.find((k: { key: string }) => k.key === 'ttl/short');
      if (listed) assert.match(listed.expires_at, RFC3339); // (may already have expired on a slow machine)
      await waitFor('the key to expire', async () => ((await get('ttl/short')).status === 404 ? true : undefined));
      assertError(await get('ttl/short'), 404, 'kv_key_not_found');
      const afterList = await list('?prefix=ttl/');
      assert.ok(!afterList.body.keys.some((k: { key: string }) => k.key === 'ttl/short'), afterList.text);
      // an expired key is absent for create-only writes too
      const again = await put('ttl/short', 'back', { 'if-none-match': '*' });
      assert.equal(again.status, 200, again.text);
      assert.equal(again.body.version, 1);
    });

    it('a key without ttl_s has expires_at null; ttl_s must be a positive integer', async () => {
      await put('ttl/none', 1);
      const res = await list('?prefix=ttl/none');
      assert.equal(res.body.keys[0].expires_at, null);
      for (const bad of ['0', '-1', 'soon', '1.5']) {
        assertError(await put('ttl/bad', 1, {}, `?ttl_s=${bad}`), 400, 'invalid_request');
      }
    });
  });

  describe('delete', () => {
    it('DELETE → 204 with no body, then GET and DELETE → 404 kv_key_not_found', async () => {
      await put('doomed', [1, 2, 3]);
      const res = await del('doomed');
      assert.equal(res.status, 204);
      assert.equal(res.text, '');
      assertError(await get('doomed'), 404, 'kv_key_not_found');
      assertError(await del('doomed'), 404, 'kv_key_not_found');
    });
  });

  describe('listing', () => {
    it('GET /kv?prefix= lists the matching keys in pages of ?limit= with ?cursor=', async () => {
      const keys = Array.from({ length: 7 }, (_, i) => `page/k${i}`);
      for (const key of keys) await put(key, key);
      await put('pagex', 'not under page/');
      await put('other/page/k0', 'not a prefix match');
      const seen: string[] = [];
      let cursor: string | null = null;
      const sizes: number[] = [];
      for (let i = 0; i < 10; i += 1) {
        const res = await list(`?prefix=${encodeURIComponent('page/')}&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        assert.equal(res.status, 200, res.text);
        sizes.push(res.body.keys.length);
        for (const entry of res.body.keys) {
          assert.deepEqual(Object.keys(entry).sort(), ['expires_at', 'key', 'updated_at', 'version']);
          assert.equal(entry.version, 1);
          seen.push(entry.key);
        }
        cursor = res.body.next_cursor;
        if (cursor === null) break;
      }
      assert.deepEqual(sizes, [3, 3, 1]);
      assert.deepEqual(seen, keys, 'every key once, in key order');
    });

    it('a page exactly at the end has next_cursor null; limit bounds are checked', async () => {
      const res = await list('?prefix=page/&limit=7');
      assert.equal(res.body.keys.length, 7);
      assert.equal(res.body.next_cursor, null);
      assertError(await list('?limit=0'), 400, 'invalid_request');
      assertError(await list('?limit=501'), 400, 'invalid_request');
      assertError(await list('?cursor=not-a-cursor'), 400, 'invalid_cursor');
    });

    it('without ?prefix= lists every key; limit defaults to 50', async () => {
      const res = await list('');
      assert.equal(res.status, 200);
      assert.ok(res.body.keys.length > 0 && res.body.keys.length <= 50, res.text);
      const all = await list('?limit=500');
      for (const key of ['page/k0', 'pagex', 'other/page/k0', 'counter']) {
        assert.ok(all.body.keys.some((k: { key: string }) => k.key === key), key);
      }
    });

    it('prefixes are literal, whatever characters they hold (%, _, non-ASCII, emoji)', async () => {
      const keys = ['lit/50%_off', 'lit/50x_off', 'lit/ü/a', 'lit/u/a', 'lit/😀/a', 'lit/😀/b', 'lit/😁/a'];
      for (const key of keys) await put(key, 1);
      const names = async (prefix: string) => (await list(`?prefix=${encodeURIComponent(prefix)}`)).body.keys.map((k: { key: string }) => k.key).sort();
      assert.deepEqual(await names('lit/50%'), ['lit/50%_off']);
      assert.deepEqual(await names('lit/ü'), ['lit/ü/a']);
      assert.deepEqual(await names('lit/😀'), ['lit/😀/a', 'lit/😀/b']);
      assert.deepEqual(await names('lit/😀/'), ['lit/😀/a', 'lit/😀/b']);
    });
  });

  describe('keys in the path', () => {
    it('percent-encoded keys with "/", spaces, unicode and reserved characters round-trip', async () => {
      const keys = [
        'dir/sub/file.json', 'with space', 'ünïcødé/ключ/键/😀', '100%', 'q?x#y&z=1', 'a+b', 'a/../b', '.hidden', 'trailing/',
        ' leading and trailing ', 'semi;colon,comma', "quote'\"", 'back\\slash', 'é'.repeat(256),
      ];
      for (const key of keys) {
        const res = await put(key, { key });
        assert.equal(res.status, 200, `${JSON.stringify(key)}: ${res.text}`);
        assert.equal(res.body.key, key);
      }
      for (const key of keys) {
        const res = await get(key);
        assert.equal(res.status, 200, `${JSON.stringify(key)}: ${res.text}`);
        assert.deepEqual(res.body, { key });
      }
      const listed = (await list('?limit=500')).body.keys.map((k: { key: string }) => k.key);
      for (const key of keys) assert.ok(listed.includes(key), `${JSON.stringify(key)} is listed decoded`);
      for (const key of keys) assert.equal((await del(key)).status, 204, JSON.stringify(key));
    });

    it('an unencoded "/" in the path is part of the key', async () => {
      const res = await call(server.url, 'PUT', `/api/v1/projects/${P}/kv/raw/slash/key`, { token: acct.member, json: 'raw' });
      assert.equal(res.status, 200, res.text);
      assert.equal(res.body.key, 'raw/slash/key');
      assert.equal((await get('raw/slash/key')).body, 'raw');
    });

    it('a key over 512 bytes → 400 invalid_kv_key (512 bytes is fine)', async () => {
      assert.equal((await put('k'.repeat(512), 1)).status, 200);
      for (const key of ['k'.repeat(513), 'é'.repeat(256) + 'k', '😀'.repeat(129)]) {
        assertError(await put(key, 1), 400, 'invalid_kv_key');
        assertError(await get(key), 400, 'invalid_kv_key');
        assertError(await del(key), 400, 'invalid_kv_key');
      }
    });

    it('a key with a control character → 400 invalid_kv_key', async () => {
      for (const key of ['tab\there', 'new\nline', 'nul\u0000', 'bell\u0007', 'del\u007f', 'c1\u0085']) {
        assertError(await put(key, 1), 400, 'invalid_kv_key');
        assertError(await get(key), 400, 'invalid_kv_key');
      }
    });

    it('an empty key → 400 invalid_kv_key', async () => {
      assertError(await call(server.url, 'PUT', `/api/v1/projects/${P}/kv/`, { token: acct.member, json: 1 }), 400, 'invalid_kv_key');
    });

    it('a key that is not UTF-8 → 400 in the error shape', async () => {
      const res = await call(server.url, 'PUT', `/api/v1/projects/${P}/kv/bad%FFutf8`, { token: acct.member, json: 1 });
      // (Fastify rejects the undecodable escape before routing; it must still get the one error shape.)
      assertError(res, 400, 'invalid_kv_key');
    });
  });

  describe('limits', () => {
    const smallPut = (key: string, body: string, headers: Record<string, string> = {}) =>
      call(small.url, 'PUT', `/api/v1/projects/${P}/kv/${encodeURIComponent(key)}`, { token: smallAcct.member, body, headers: { 'content-type': 'application/json', ...headers } });
    const smallDel = (key: string) => call(small.url, 'DELETE', `/api/v1/projects/${P}/kv/${encodeURIComponent(key)}`, { token: smallAcct.member });

    it(`a value over COMPUTALOT_KV_MAX_VALUE_BYTES → 413 kv_value_too_large naming the limit`, async () => {
      const atLimit = JSON.stringify('x'.repeat(SMALL_VALUE_LIMIT - 2));
      assert.equal(Buffer.byteLength(atLimit), SMALL_VALUE_LIMIT);
      const ok = await smallPut('v/at-limit', atLimit);
      assert.equal(ok.status, 200, ok.text);
      const over = JSON.stringify('x'.repeat(SMALL_VALUE_LIMIT - 1));
      const res = await smallPut('v/over', over);
      assertError(res, 413, 'kv_value_too_large');
      assert.match(res.body.error.message, /1 KiB/);
      assert.equal((await call(small.url, 'GET', `/api/v1/projects/${P}/kv/v%2Fover`, { token: smallAcct.viewer })).status, 404);
      assert.equal((await smallDel('v/at-limit')).status, 204);
    });

    it('the default value limit is 1 MiB', async () => {
      const under = JSON.stringify({ blob: 'y'.repeat(1024 * 1024 - 100) });
      const ok = await call(server.url, 'PUT', kv('big/under'), { token: acct.member, body: under, headers: { 'content-type': 'application/json' } });
      assert.equal(ok.status, 200, ok.text);
      assert.equal((await get('big/under')).body.blob.length, 1024 * 1024 - 100);
      const over = JSON.stringify({ blob: 'z'.repeat(Math.round(1.1 * 1024 * 1024)) });
      const res = await call(server.url, 'PUT', kv('big/over'), { token: acct.member, body: over, headers: { 'content-type': 'application/json' } });
      assertError(res, 413, 'kv_value_too_large');
      assert.match(res.body.error.message, /1 MiB/);
      assertError(await get('big/over'), 404, 'kv_key_not_found');
      assert.equal((await del('big/under')).status, 204);
    });

    it(`the key-count limit → 429 kv_key_limit; overwrites and deletes still work`, async () => {
      for (let i = 0; i < SMALL_KEY_LIMIT; i += 1) {
        const res = await smallPut(`count/k${i}`, String(i));
        assert.equal(res.status, 200, res.text);
      }
      const refused = await smallPut('count/one-too-many', '1');
      assertError(refused, 429, 'kv_key_limit');
      assert.match(refused.body.error.message, new RegExp(`${SMALL_KEY_LIMIT}`));
      assertError(await smallPut('count/one-too-many', '1', { 'if-none-match': '*' }), 429, 'kv_key_limit');
      const overwrite = await smallPut('count/k0', '"changed"');
      assert.equal(overwrite.status, 200, overwrite.text);
      assert.equal(overwrite.body.version, 2);
      assert.equal((await smallDel('count/k1')).status, 204);
      const fits = await smallPut('count/one-too-many', '1');
      assert.equal(fits.status, 200, fits.text);
    });

    it('expired keys do not count against the key limit', async () => {
      // the project holds 3 keys (k0, k2, one-too-many); free one and fill it with a key that expires
      assert.equal((await smallDel('count/k2')).status, 204);
      const short = await call(small.url, 'PUT', `/api/v1/projects/${P}/kv/count%2Fshort?ttl_s=1`, { token: smallAcct.member, json: 1 });
      assert.equal(short.status, 200, short.text);
      await waitFor('the key to expire', async () =>
        ((await call(small.url, 'GET', `/api/v1/projects/${P}/kv/count%2Fshort`, { token: smallAcct.viewer })).status === 404 ? true : undefined));
      const res = await smallPut('count/after-expiry', '1');
      assert.equal(res.status, 200, res.text);
    });

    it('concurrent creates of distinct keys cannot pass the key limit together', async () => {
      const made = await call(small.url, 'POST', '/api/v1/projects', { token: smallAcct.member, json: { name: 'kv-race' } });
      assert.equal(made.status, 201, made.text);
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        call(small.url, 'PUT', `/api/v1/projects/kv-race/kv/racer-${i}`, { token: smallAcct.member, json: i })));
      const statuses = answers.map((a) => a.status).sort();
      assert.deepEqual(statuses, [200, 200, 200, 429, 429, 429, 429, 429], answers.map((a) => `${a.status} ${a.text}`).join('\n'));
      const listed = await call(small.url, 'GET', '/api/v1/projects/kv-race/kv', { token: smallAcct.viewer });
      assert.equal(listed.body.keys.length, SMALL_KEY_LIMIT);
    });

    it('the key limit is per project', async () => {
      const other = await call(small.url, 'POST', '/api/v1/projects', { token: smallAcct.member, json: { name: 'kv-second' } });
      assert.equal(other.status, 201, other.text);
      const res = await call(small.url, 'PUT', '/api/v1/projects/kv-second/kv/first', { token: smallAcct.member, json: 1 });
      assert.equal(res.status, 200, res.text);
    });
  });

  describe('isolation', () => {
    it("another account's project of the same name has its own KV; the owner's is 404 to it", async () => {
      const other = await makeAccount(server.url, 'kv-other');
      assert.equal((await call(server.url, 'POST', '/api/v1/projects', { token: other.member, json: { name: P } })).status, 201);
      assertError(await call(server.url, 'GET', kv('counter'), { token: other.member }), 404, 'kv_key_not_found');
      const theirs = await call(server.url, 'PUT', kv('counter'), { token: other.member, json: 'theirs' });
      assert.equal(theirs.body.version, 1);
      assert.deepEqual((await get('counter')).body, { n: 2 });
      const third = await makeAccount(server.url, 'kv-third');
      assertError(await call(server.url, 'GET', kv('counter'), { token: third.member }), 404, 'project_not_found');
      assertError(await call(server.url, 'PUT', kv('counter'), { token: third.member, json: 1 }), 404, 'project_not_found');
      assertError(await call(server.url, 'DELETE', kv('counter'), { token: third.member }), 404, 'project_not_found');
      assertError(await call(server.url, 'GET', `/api/v1/projects/${P}/kv`, { token: third.member }), 404, 'project_not_found');
    });
  });

  describe('events on the project stream', () => {
    it('PUT, DELETE and expiry appear as kv.updated / kv.deleted, in order', async () => {
      const stream = openStream(server.url, P, acct.viewer);
      try {
        await stream.opened;
        await put('ev/a', 1);
        await put('ev/a', 2);
        await put('ev/b', 'b');
        await del('ev/a');
        await put('ev/ttl', 'short', {}, '?ttl_s=1');
        const mine = () => stream.events.filter((e) => String(e.data.key).startsWith('ev/'));
        const seen = await waitFor('five kv events and the expiry', () => (mine().length >= 6 ? mine() : undefined));
        assert.deepEqual(seen.map((e) => [e.type, e.data.key, e.data.version]), [
          ['kv.updated', 'ev/a', 1],
          ['kv.updated', 'ev/a', 2],
          ['kv.updated', 'ev/b', 1],
          ['kv.deleted', 'ev/a', undefined],
          ['kv.updated', 'ev/ttl', 1],
          ['kv.deleted', 'ev/ttl', undefined],
        ]);
        assert.equal(seen[5]!.data.reason, 'expired');
        for (const e of seen) assert.equal(e.data.project, P);
        for (let i = 1; i < seen.length; i += 1) assert.ok(seen[i]!.id > seen[i - 1]!.id, 'ids increase');
        assert.match(seen[0]!.data.updated_at, RFC3339);
      } finally {
        stream.close();
      }
    });

    it('refused writes emit nothing', async () => {
      const stream = openStream(server.url, P, acct.viewer);
      try {
        await stream.opened;
        await put('ev/guarded', 1);
        assertError(await put('ev/guarded', 2, { 'if-match': '"9"' }), 412, 'kv_version_mismatch');
        assertError(await put('ev/guarded', 2, { 'if-none-match': '*' }), 412, 'kv_key_exists');
        assertError(await del('ev/never'), 404, 'kv_key_not_found');
        await put('ev/marker', 'end');
        const seen = await waitFor('the marker', () =>
          stream.events.some((e) => e.data.key === 'ev/marker') ? stream.events.filter((e) => e.type.startsWith('kv.')) : undefined);
        assert.deepEqual(seen.map((e) => [e.type, e.data.key]), [['kv.updated', 'ev/guarded'], ['kv.updated', 'ev/marker']]);
      } finally {
        stream.close();
      }
    });

    it('a key that expired is announced as deleted even when a write or delete reaches it before the sweeper', async () => {
      const stream = openStream(server.url, P, acct.viewer);
      try {
        await stream.opened;
        await put('ev/exp-put', 'v1', {}, '?ttl_s=1');
        await put('ev/exp-del', 'v1', {}, '?ttl_s=1');
        await waitFor('both keys to expire', async () =>
          ((await get('ev/exp-put')).status === 404 && (await get('ev/exp-del')).status === 404 ? true : undefined));
        // Right after expiry (the sweeper runs every 5 s): overwrite one, delete the other.
        const rewritten = await put('ev/exp-put', 'v2');
        assert.equal(rewritten.body.version, 1);
        assertError(await del('ev/exp-del'), 404, 'kv_key_not_found');
        await put('ev/exp-marker', 'end');
        await waitFor('the marker', () => (stream.events.some((e) => e.data.key === 'ev/exp-marker') ? true : undefined));
        // A subscriber mirroring KV from the stream must learn that both expired versions are gone.
        const delAnnounced = await waitFor('the expiry of ev/exp-del', () =>
          stream.events.find((e) => e.type === 'kv.deleted' && e.data.key === 'ev/exp-del'));
        assert.equal(delAnnounced.data.reason, 'expired');
        const forPut = stream.events.filter((e) => e.data.key === 'ev/exp-put').map((e) => [e.type, e.data.version ?? e.data.reason]);
        assert.deepEqual(forPut, [['kv.updated', 1], ['kv.deleted', 'expired'], ['kv.updated', 1]]);
      } finally {
        stream.close();
      }
    });
  });
});
