/**
 * Push over real HTTP (SPEC §3.1–§3.3): every row of the §3.3 table, sent as an archive built in the test
 * by a real tool, answers its status and code; nothing is written outside the data dir (the malicious
 * entries name unique paths that must not exist afterwards); no temp file is left; the server stays up.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  cleanupArchives, corruptChecksumArchive, gzipBomb, makeArchive, multipartBody, pythonTar, toolSkip,
  truncatedArchive, zipArchive, type PyEntry,
} from '../helpers/archives.js';
import { call, makeAccount, type TestAccount } from '../helpers/http.js';
import { startTestServer, type TestServer } from '../helpers/server.js';

const MANIFEST = JSON.stringify({ version: 1, runtime: { kind: 'oci', sandbox: 'gvisor', workdir: '/workspace' }, entrypoint: { command: ['python3', 'job.py'] } });
const base: PyEntry[] = [
  { name: 'Dockerfile', data: 'FROM scratch\n' },
  { name: 'computalot.project.json', data: MANIFEST },
];
const tag = randomBytes(4).toString('hex');

describe('push API', { skip: toolSkip('tar', 'python3') }, () => {
  let srv: TestServer;
  let acc: TestAccount;
  let n = 0;
  const escapes: string[] = [];

  async function push(body: Buffer | string, headers: Record<string, string> = {}, project?: string) {
    let name = project;
    if (!name) {
      n += 1;
      name = `p${n}`;
      assert.equal((await call(srv.url, 'POST', '/api/v1/projects', { token: acc.member, json: { name } })).status, 201);
    }
    const bytes = typeof body === 'string' ? await readFile(body) : body;
    return call(srv.url, 'POST', `/api/v1/projects/${name}/push`, { token: acc.member, body: bytes, headers });
  }

  async function expectError(body: Buffer | string, status: number, code: string, message?: RegExp, headers?: Record<string, string>) {
    const res = await push(body, headers);
    assert.equal(res.status, status, res.text);
    assert.equal(res.body.error.code, code, res.text);
    assert.ok(res.body.error.message.length > 20, 'the message says what was wrong');
    if (message) assert.match(res.body.error.message, message);
    return res;
  }

  before(async () => {
    srv = await startTestServer({
      COMPUTALOT_MAX_PUSH_BYTES: String(1024 * 1024),
      COMPUTALOT_MAX_EXPANDED_BYTES: String(8 * 1024 * 1024),
      COMPUTALOT_MAX_TARBALL_ENTRIES: '50',
    });
    acc = await makeAccount(srv.url, 'push-test');
  });
  after(async () => {
    for (const path of escapes) assert.equal(existsSync(path), false, `${path} was written outside the data dir`);
    assert.deepEqual(await readdir(join(srv.dataDir, 'tmp')), [], 'no temp file is left behind');
    assert.equal((await call(srv.url, 'GET', '/health', { token: null })).status, 200, 'the server is still up');
    await srv.stop();
    await cleanupArchives();
  });

  it('accepts ./ prefixes, pax and GNU long names and folders, normalised', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(120)}.txt`;
    const path = await makeArchive({ tool: 'gnu', files: { Dockerfile: 'FROM scratch\n', 'computalot.project.json': MANIFEST, [long]: 'x', 'dir/a.py': 'a' }, gzip: true });
    const res = await push(path);
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.published, true);
    assert.equal(res.body.unchanged, false);
    assert.equal(res.body.file_count, 4);
    assert.equal(res.body.can_accept_new_jobs, true);
    assert.equal(res.body.ready_for_jobs, false);
    assert.equal(res.body.manifest.runtime.workdir, '/workspace');
    assert.deepEqual(res.body.manifest_warnings, []);
    assert.equal(res.body.tarball_diff, undefined, 'no diff for a first revision');
  });

  it('keeps the last of two entries with the same path', async () => {
    const twice = await push(await pythonTar([...base, { name: 'a.txt', data: 'old' }, { name: 'a.txt', data: 'new' }]));
    const once = await push(await pythonTar([...base, { name: 'a.txt', data: 'new' }]));
    assert.equal(twice.status, 201);
    assert.equal(twice.body.file_count, 3);
    assert.equal(twice.body.content_hash, once.body.content_hash);
  });

  it('refuses absolute and .. paths with unsafe_path naming the entry', async () => {
    const abs = `/tmp/computalot-escape-${tag}-abs`;
    const up = `../../computalot-escape-${tag}-up`;
    escapes.push(abs, join(dirname(dirname(srv.dataDir)), `computalot-escape-${tag}-up`));
    await expectError(await pythonTar([...base, { name: abs, data: 'x' }]), 422, 'unsafe_path', new RegExp(abs));
    await expectError(await pythonTar([...base, { name: up, data: 'x' }]), 422, 'unsafe_path', /computalot-escape/);
  });

  it('refuses symlinks that are absolute or leave the tree with unsafe_link', async () => {
    await expectError(await pythonTar([...base, { name: 'l', type: 'symlink', linkname: '/etc/passwd' }]), 422, 'unsafe_link', /\/etc\/passwd/);
    await expectError(await pythonTar([...base, { name: 'a/l', type: 'symlink', linkname: '../../outside' }]), 422, 'unsafe_link');
  });

  it('accepts a hard link to an earlier regular file, refuses any other', async () => {
    const ok = await push(await pythonTar([...base, { name: 'a.txt', data: 'same' }, { name: 'b.txt', type: 'hardlink', linkname: 'a.txt' }]));
    assert.equal(ok.status, 201, ok.text);
    assert.equal(ok.body.file_count, 4);
    await expectError(await pythonTar([...base, { name: 'b.txt', type: 'hardlink', linkname: 'missing.txt' }]), 422, 'invalid_hardlink');
    await expectError(await pythonTar([...base, { name: 'b.txt', type: 'hardlink', linkname: '/etc/shadow' }]), 422, 'invalid_hardlink');
  });

  it('refuses devices, fifos and sockets with unsupported_entry', async () => {
    for (const type of ['chr', 'blk', 'fifo'] as const) {
      await expectError(await pythonTar([...base, { name: `dev-${type}`, type }]), 422, 'unsupported_entry');
    }
  });

  it('drops setuid, setgid and sticky bits', async () => {
    const suid = await push(await pythonTar([...base, { name: 'run.sh', data: '#!/bin/sh\n', mode: 0o6755 }]));
    const plain = await push(await pythonTar([...base, { name: 'run.sh', data: '#!/bin/sh\n', mode: 0o755 }]));
    assert.equal(suid.status, 201);
    assert.equal(suid.body.content_hash, plain.body.content_hash);
  });

  it('answers 413 for a body over the limit, stating the limit', async () => {
    const big = await pythonTar([...base, { name: 'big.bin', data: randomBytes(2 * 1024 * 1024) }]);
    await expectError(big, 413, 'tarball_too_large', /1 MiB/);
  });

  it('answers 413 for a gzip bomb, stating the limit', async () => {
    await expectError(await gzipBomb(64 * 1024 * 1024), 413, 'tarball_expanded_too_large', /8 MiB/);
  });

  it('answers 413 for more entries than the limit', async () => {
    const entries = Array.from({ length: 60 }, (_, i) => ({ name: `f${i}.txt`, data: String(i) }));
    await expectError(await pythonTar([...base, ...entries]), 413, 'tarball_too_many_entries', /50/);
  });

  it('answers 400 invalid_tarball for empty, non-tar, truncated and bad-checksum bodies', async () => {
    await expectError(Buffer.alloc(0), 400, 'invalid_tarball', /empty/);
    await expectError(Buffer.from('hello, this is not an archive at all'.repeat(40)), 400, 'invalid_tarball');
    await expectError(await truncatedArchive(), 400, 'invalid_tarball');
    await expectError(await truncatedArchive({ gzip: true }), 400, 'invalid_tarball');
    await expectError(await corruptChecksumArchive(), 400, 'invalid_tarball');
  });

  it('answers 422 dockerfile_missing without a Dockerfile where build.dockerfile points', async () => {
    await expectError(await pythonTar([{ name: 'computalot.project.json', data: MANIFEST }, { name: 'job.py', data: '' }]), 422, 'dockerfile_missing');
    const custom = JSON.stringify({ ...JSON.parse(MANIFEST), build: { dockerfile: 'docker/Dockerfile.gpu' } });
    await expectError(await pythonTar([{ name: 'Dockerfile', data: '' }, { name: 'computalot.project.json', data: custom }]), 422, 'dockerfile_missing', /docker\/Dockerfile\.gpu/);
  });

  it('answers 422 saying to tar from inside a single top-level folder', async () => {
    const res = await expectError(await pythonTar(base.map((e) => ({ ...e, name: `my-project/${e.name}` }))), 422, 'nested_project_root');
    assert.match(res.body.error.message, /tar czf code\.tar\.gz -C my-project \./);
  });

  it('answers 422 invalid_manifest with each problem and its JSON path', async () => {
    const notJson = await expectError(await pythonTar([base[0]!, { name: 'computalot.project.json', data: '{"version": 1,' }]), 422, 'invalid_manifest');
    assert.ok(notJson.body.error.details.problems.length >= 1);
    const bad = JSON.stringify({ version: 2, runtime: { kind: 'oci', sandbox: 'gvisor', workdir: 'relative' }, entrypoint: { command: [] } });
    const res = await expectError(await pythonTar([base[0]!, { name: 'computalot.project.json', data: bad }]), 422, 'invalid_manifest');
    const paths = res.body.error.details.problems.map((p: { path: string }) => p.path);
    for (const path of ['/version', '/runtime/workdir', '/entrypoint/command']) assert.ok(paths.includes(path), `${path} in ${paths}`);
  });

  it('lists unknown manifest keys in manifest_warnings', async () => {
    const extra = JSON.stringify({ ...JSON.parse(MANIFEST), colour: 'blue' });
    const res = await push(await pythonTar([base[0]!, { name: 'computalot.project.json', data: extra }]));
    assert.equal(res.status, 201);
    assert.equal(res.body.manifest_warnings.length, 1);
    assert.match(res.body.manifest_warnings[0], /colour/);
  });

  it('answers 415 for a zip and for a multipart form, saying what to send', async () => {
    await expectError(await zipArchive(), 415, 'unsupported_media_type', /tar/);
    const { body, contentType } = multipartBody(await readFile(await pythonTar(base, { gzip: true })));
    await expectError(body, 415, 'unsupported_media_type', /--data-binary/, { 'content-type': contentType });
  });

  it('recognises gzip and plain tar by their bytes, whatever the Content-Type', async () => {
    for (const gzip of [true, false]) {
      const res = await push(await pythonTar(base, { gzip }), { 'content-type': 'application/json' });
      assert.equal(res.status, 201, res.text);
    }
  });

  it('answers unchanged for the same content and a tarball_diff for a new revision', async () => {
    const first = await push(await pythonTar([...base, { name: 'a.py', data: '1' }, { name: 'b.py', data: '2' }]));
    const project = `p${n}`;
    const same = await push(await makeArchive({ tool: 'gnu', files: { Dockerfile: 'FROM scratch\n', 'computalot.project.json': MANIFEST, 'a.py': '1', 'b.py': '2' } }), {}, project);
    assert.equal(same.status, 200);
    assert.equal(same.body.unchanged, true);
    assert.equal(same.body.revision, first.body.revision);
    const next = await push(await pythonTar([...base, { name: 'a.py', data: 'changed' }, { name: 'c.py', data: '3' }]), {}, project);
    assert.equal(next.status, 201);
    assert.equal(next.body.revision, 2);
    assert.deepEqual(next.body.tarball_diff, { added_files: ['c.py'], removed_files: ['b.py'], changed_files: ['a.py'] });
  });

  it('answers 409 push_in_progress with Retry-After while another push of the project is taken in', async () => {
    const archive = await readFile(await pythonTar([...base, { name: 'slow.bin', data: randomBytes(4096) }]));
    n += 1;
    const name = `p${n}`;
    await call(srv.url, 'POST', '/api/v1/projects', { token: acc.member, json: { name } });
    const req = request(`${srv.url}/api/v1/projects/${name}/push`, {
      method: 'POST', headers: { authorization: `Bearer ${acc.member}`, 'content-length': String(archive.length) },
    });
    const first = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
    });
    req.write(archive.subarray(0, 1024));
    await sleep(200);
    const second = await call(srv.url, 'POST', `/api/v1/projects/${name}/push`, { token: acc.member, body: archive });
    assert.equal(second.status, 409);
    assert.equal(second.body.error.code, 'push_in_progress');
    assert.equal(second.headers.get('retry-after'), '1');
    req.end(archive.subarray(1024));
    assert.equal(await first, 201);
    const retried = await call(srv.url, 'POST', `/api/v1/projects/${name}/push`, { token: acc.member, body: archive });
    assert.equal(retried.status, 200, 'after the first push, the retry finds the same content');
  });

  it('answers 429 quota_exceeded past the stored-bytes quota', async () => {
    const other = await makeAccount(srv.url, 'quota-test');
    await call(srv.url, 'PUT', `/api/v1/admin/accounts/${other.id}/quotas`, { json: { stored_bytes: 100 } });
    await call(srv.url, 'POST', '/api/v1/projects', { token: other.member, json: { name: 'q' } });
    const res = await call(srv.url, 'POST', '/api/v1/projects/q/push', { token: other.member, body: await readFile(await pythonTar(base)) });
    assert.equal(res.status, 429);
    assert.equal(res.body.error.code, 'quota_exceeded');
    assert.equal(res.body.error.details.limit, 100);
  });
});
