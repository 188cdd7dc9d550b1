/**
 * SPEC §3.3 at the intake level: every row of "What a tarball may hold", sent as a real archive, answers
 * the documented status and error code; every refusal leaves no temp file behind; a limit stops the intake
 * even when the rest of the body never comes. (Memory and timing are for bench/, not asserted here.)
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { isAppError } from '../../src/core/errors.js';
import { takeInTarball, type IntakeLimits, type IntakeResult } from '../../src/tarball/intake.js';
import { inspectProject } from '../../src/tarball/inspect.js';
import {
  cleanupArchives, corruptChecksumArchive, corruptGzipArchive, endlessStream, endlessTarStream, gnuTar, gzipBomb, makeArchive,
  makeTree, multipartBody, pythonTar, stallingStream, truncatedArchive, zipArchive, type PyEntry,
  toolSkip,
} from '../helpers/archives.js';

const skip = toolSkip('tar', 'python3');

const LIMITS: IntakeLimits = { maxBodyBytes: 32 * 1024 * 1024, maxExpandedBytes: 64 * 1024 * 1024, maxEntries: 1000 };
const DOCKERFILE: PyEntry = { name: 'Dockerfile', data: 'FROM scratch\n' };
let tmp: string;
before(async () => (tmp = await mkdtemp(join(tmpdir(), 'intake-'))));
afterEach(async () => {
  // Successful intakes leave their file for the caller; tests remove them so the next check starts clean.
  for (const name of await readdir(tmp)) await rm(join(tmp, name));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
  await cleanupArchives();
});

const bodyOf = (source: string | Buffer | Readable): Readable =>
  typeof source === 'string' ? createReadStream(source) : Buffer.isBuffer(source) ? Readable.from([source]) : source;

async function accept(source: string | Buffer | Readable, limits: Partial<IntakeLimits> = {}): Promise<IntakeResult> {
  return takeInTarball(bodyOf(source), { tmpDir: tmp, limits: { ...LIMITS, ...limits } });
}

/** Expects a refusal with this status and code, whose message matches, and no temp file left behind. */
async function refuse(
  source: string | Buffer | Readable, status: number, code: string, message?: RegExp, limits: Partial<IntakeLimits> = {},
): Promise<Record<string, unknown>> {
  const error = await accept(source, limits).then(
    (result) => assert.fail(`accepted: ${JSON.stringify(result.files)}`),
    (error: unknown) => error,
  );
  assert.ok(isAppError(error), `not an AppError: ${String(error)}`);
  assert.equal(error.code, code, error.message);
  assert.equal(error.status, status);
  if (message) assert.match(error.message, message);
  assert.deepEqual(await readdir(tmp), [], 'temp file left behind');
  return error.details;
}

const py = (entries: PyEntry[], gzip = true) => pythonTar(entries, { gzip });
const paths = (result: IntakeResult) => result.files.map((file) => file.path);

describe('accepted and normalised', { skip }, () => {
  it('streams the body to a temp file with its sha256, size and compression', async () => {
    const path = await makeArchive({ tool: 'gnu', files: { Dockerfile: 'FROM scratch\n' }, gzip: true });
    const raw = await readFile(path);
    const result = await accept(path);
    assert.deepEqual(await readFile(result.tarballPath), raw);
    assert.equal(result.tarballSha256, createHash('sha256').update(raw).digest('hex'));
    assert.equal(result.sizeBytes, raw.length);
    assert.equal(result.compression, 'gzip');
    assert.ok(result.expandedBytes >= 1024);
    assert.equal((await accept(await gnuTar(await makeTree({ Dockerfile: 'x' })))).compression, 'none');
  });

  it('normalises ./ prefixes, // and trailing /, skips folders, reads pax and GNU long names', async () => {
    const long = `${'a'.repeat(60)}/${'b'.repeat(60)}/${'c'.repeat(60)}.txt`;
    for (const format of ['pax', 'gnu'] as const) {
      const result = await accept(await pythonTar([
        { name: './', type: 'dir' }, { name: './src/', type: 'dir' }, { name: './/src//main.py', data: 'x' },
        { name: long, data: 'long' }, { name: './link', type: 'symlink', linkname: `./${long}` }, DOCKERFILE,
      ], { format }));
      assert.deepEqual(paths(result), ['Dockerfile', long, 'link', 'src/main.py']);
    }
  });

  it('keeps the last of two entries with the same path', async () => {
    const result = await accept(await py([
      { name: 'a.txt', data: 'first' }, { name: 'l', type: 'symlink', linkname: 'a.txt' },
      { name: './a.txt', data: 'second', mode: 0o755 }, { name: 'l', data: 'now a file' }, DOCKERFILE,
    ]));
    const a = result.files.find((file) => file.path === 'a.txt')!;
    assert.equal(a.sha256, createHash('sha256').update('second').digest('hex'));
    assert.equal(a.executable, true);
    assert.equal(result.files.find((file) => file.path === 'l')!.kind, 'file');
  });

  it('stores a hard link to an earlier regular file as a copy', async () => {
    const result = await accept(await py([
      { name: 'bin/tool', data: '#!/bin/sh\n', mode: 0o755 }, { name: 'bin/alias', type: 'hardlink', linkname: 'bin/tool' }, DOCKERFILE,
    ]));
    const [alias, tool] = result.files.filter((file) => file.path.startsWith('bin/'));
    assert.deepEqual({ ...alias, path: 'x' }, { ...tool, path: 'x' });
    assert.equal(alias!.kind, 'file');
  });

  it('drops setuid, setgid and sticky bits (only the x bit counts)', async () => {
    const plain = await accept(await py([{ name: 'run', data: 'x', mode: 0o755 }, { name: 'd', type: 'dir', mode: 0o1777 }]));
    const special = await accept(await py([{ name: 'run', data: 'x', mode: 0o6755 }, { name: 'd', type: 'dir', mode: 0o3777 }]));
    assert.equal(special.contentHash, plain.contentHash);
    assert.deepEqual(Object.keys(special.files[0]!).sort(), ['executable', 'kind', 'path', 'sha256', 'size']);
  });

  it('keeps an in-tree symlink that uses ..', async () => {
    const result = await accept(await py([{ name: 'lib/x', type: 'symlink', linkname: '../bin/y' }, { name: 'bin/y', data: 'y' }]));
    assert.deepEqual(paths(result), ['bin/y', 'lib/x']);
  });

  it('captures the root manifest text only', async () => {
    const manifest = '{"version": 1}';
    const result = await accept(await py([{ name: 'sub/computalot.project.json', data: '{}' }, { name: './computalot.project.json', data: manifest }]));
    assert.equal(result.manifestText, manifest);
    assert.equal((await accept(await py([DOCKERFILE]))).manifestText, null);
  });
});

describe('refused entries (422)', { skip }, () => {
  it('an absolute path is unsafe_path naming the entry', async () => {
    const details = await refuse(await py([DOCKERFILE, { name: '/etc/cron.d/evil', data: 'x' }]), 422, 'unsafe_path', /"\/etc\/cron.d\/evil"/);
    assert.equal(details.entry, '/etc/cron.d/evil');
  });

  it('a path with .. is unsafe_path naming the entry', async () => {
    await refuse(await py([{ name: 'src/../../escape.txt', data: 'x' }]), 422, 'unsafe_path', /src\/\.\.\/\.\.\/escape\.txt/);
    await refuse(await py([{ name: 'a/../b', data: 'x' }]), 422, 'unsafe_path');
    await refuse(await py([{ name: '../', type: 'dir' }]), 422, 'unsafe_path');
  });

  it('a symlink that is absolute or leaves the tree is unsafe_link', async () => {
    await refuse(await py([{ name: 'passwd', type: 'symlink', linkname: '/etc/passwd' }]), 422, 'unsafe_link', /\/etc\/passwd/);
    await refuse(await py([{ name: 'a/up', type: 'symlink', linkname: '../../outside' }]), 422, 'unsafe_link');
    // Each link stays inside on its own; followed through `a`, `b` climbs out of the tree.
    await refuse(await py([{ name: 'a', type: 'symlink', linkname: '.' }, { name: 'b', type: 'symlink', linkname: 'a/..' }]), 422, 'unsafe_link');
  });

  it('a hard link to anything but an earlier regular file is invalid_hardlink', async () => {
    await refuse(await py([{ name: 'h', type: 'hardlink', linkname: 'later' }, { name: 'later', data: 'x' }]), 422, 'invalid_hardlink');
    await refuse(await py([{ name: 'h', type: 'hardlink', linkname: '/etc/passwd' }]), 422, 'invalid_hardlink', /\/etc\/passwd/);
    await refuse(await py([{ name: 's', type: 'symlink', linkname: 'f' }, { name: 'h', type: 'hardlink', linkname: 's' }]), 422, 'invalid_hardlink');
    await refuse(await py([{ name: 'd', type: 'dir' }, { name: 'h', type: 'hardlink', linkname: 'd' }]), 422, 'invalid_hardlink');
  });

  it('devices, fifos and unknown entry types are unsupported_entry', async () => {
    for (const [type, kind] of [['chr', /character device/], ['blk', /block device/], ['fifo', /fifo/]] as const) {
      await refuse(await py([DOCKERFILE, { name: `dev/${type}`, type }]), 422, 'unsupported_entry', kind);
    }
    for (const typeflag of ['S', 'V', 'Z']) {
      await refuse(await py([{ name: `odd-${typeflag}`, type: 'raw', typeflag }], false), 422, 'unsupported_entry');
    }
  });

  it('a path used both as a folder and as a file or symlink is path_conflict', async () => {
    await refuse(await py([{ name: 'a', data: 'x' }, { name: 'a/b', data: 'y' }]), 422, 'path_conflict');
    await refuse(await py([{ name: 'a', type: 'symlink', linkname: 'real' }, { name: 'a/b', data: 'y' }]), 422, 'path_conflict');
    await refuse(await py([{ name: 'a/b', data: 'y' }, { name: 'a', data: 'x' }]), 422, 'path_conflict');
  });

  it('a manifest over 1 MiB or not a regular file is invalid_manifest', async () => {
    await refuse(await py([{ name: 'computalot.project.json', data: ' '.repeat(1024 * 1024 + 1) }]), 422, 'invalid_manifest', /1 MiB/);
    await refuse(await py([{ name: 'computalot.project.json', type: 'symlink', linkname: 'm.json' }]), 422, 'invalid_manifest');
  });
});

describe('limits (413), stopping at once', { skip }, () => {
  it('a body over the limit is tarball_too_large, with the limit in the message', async () => {
    const big = await makeArchive({ tool: 'python', entries: [{ name: 'blob', data: Buffer.alloc(300_000, 1) }] });
    await refuse(big, 413, 'tarball_too_large', /200 KiB/, { maxBodyBytes: 200 * 1024 });
    await refuse(endlessTarStream(), 413, 'tarball_too_large', /1 MiB/, { maxBodyBytes: 1024 * 1024 });
    await refuse(endlessStream(), 400, 'invalid_tarball', /neither gzip/, { maxBodyBytes: 1024 * 1024 });
  });

  it('a gzip bomb stops at the expanded limit without reading the rest of the body', async () => {
    const bomb = await readFile(await gzipBomb(64 * 1024 * 1024));
    await refuse(bomb, 413, 'tarball_expanded_too_large', /4 MiB/, { maxExpandedBytes: 4 * 1024 * 1024 });
    // Send all but the last bytes and then nothing: the refusal must not wait for the end of the body.
    await refuse(stallingStream(bomb.subarray(0, bomb.length - 16)), 413, 'tarball_expanded_too_large', undefined, { maxExpandedBytes: 4 * 1024 * 1024 });
  });

  it('more entries than the limit is tarball_too_many_entries, at once', async () => {
    const entries: PyEntry[] = Array.from({ length: 30 }, (_, i) => ({ name: `f${i}`, data: `${i}` }));
    const path = await py(entries, false);
    await refuse(path, 413, 'tarball_too_many_entries', /20 entries/, { maxEntries: 20 });
    const bytes = await readFile(path);
    await refuse(stallingStream(bytes.subarray(0, 512 * 50)), 413, 'tarball_too_many_entries', undefined, { maxEntries: 20 });
  });
});

describe('unreadable bodies (400) and wrong media types (415)', { skip }, () => {
  it('an empty body', async () => {
    await refuse(Buffer.alloc(0), 400, 'invalid_tarball', /the body is empty/);
  });

  it('a body that is neither gzip nor tar', async () => {
    await refuse(Buffer.from('hello, this is not an archive'), 400, 'invalid_tarball', /shorter than one tar header/);
    await refuse(Buffer.alloc(4096, 'x'), 400, 'invalid_tarball', /neither gzip .* nor a tar archive/);
    await refuse(Buffer.from('BZh91AY&SY'), 400, 'invalid_tarball', /bzip2/);
    await refuse(Buffer.alloc(1024), 400, 'invalid_tarball', /holds no entries/);
  });

  it('a gzip that does not hold a tar', async () => {
    const { gzipSync } = await import('node:zlib');
    await refuse(gzipSync(Buffer.alloc(2048, 'y')), 400, 'invalid_tarball', /the gzip data is not a tar archive/);
    await refuse(gzipSync(await readFile(await py([DOCKERFILE]))), 400, 'invalid_tarball', /gzip-compressed a second time/);
  });

  it('truncated archives, plain and gzip', async () => {
    await refuse(await truncatedArchive(), 400, 'invalid_tarball', /truncated/);
    await refuse(await truncatedArchive({ gzip: true }), 400, 'invalid_tarball', /truncated/);
    const whole = await readFile(await py([DOCKERFILE], false));
    await refuse(whole.subarray(0, 1024), 400, 'invalid_tarball', /end-of-archive marker/);
  });

  it('a bad header checksum and a corrupt gzip', async () => {
    await refuse(await corruptChecksumArchive(), 400, 'invalid_tarball', /bad checksum/);
    await refuse(await corruptGzipArchive(), 400, 'invalid_tarball', /gzip data is corrupt/);
  });

  it('a body that fails mid-way', async () => {
    const body = new Readable({ read() {} });
    body.push((await readFile(await py([{ name: 'f', data: Buffer.alloc(4096, 1) }], false))).subarray(0, 1500));
    setImmediate(() => body.destroy(new Error('socket hang up')));
    await refuse(body, 400, 'invalid_tarball', /socket hang up/);
  });

  it('a zip is 415 and says how to make a tar.gz', async () => {
    await refuse(await zipArchive(), 415, 'unsupported_media_type', /zip is not supported.*tar czf/);
  });

  it('a multipart form is 415 and says to use --data-binary', async () => {
    const { body } = multipartBody(await readFile(await py([DOCKERFILE])));
    await refuse(body, 415, 'unsupported_media_type', /--data-binary/);
  });
});

describe('project layout (inspectProject)', { skip }, () => {
  const opts = { remoteDir: '/root/app', allowRunc: false };

  it('fills the default manifest when there is none', async () => {
    const { manifest, warnings } = inspectProject(await accept(await py([DOCKERFILE])), opts);
    assert.equal(manifest.runtime.workdir, '/root/app');
    assert.deepEqual(warnings, []);
  });

  it('no Dockerfile where build.dockerfile points is dockerfile_missing', async () => {
    const noDockerfile = await accept(await py([{ name: 'main.py', data: 'x' }]));
    assert.throws(() => inspectProject(noDockerfile, opts), { code: 'dockerfile_missing' });
    const custom = await accept(await py([DOCKERFILE, { name: 'computalot.project.json', data: JSON.stringify({
      version: 1, runtime: { kind: 'oci', sandbox: 'gvisor', workdir: '/w' }, build: { dockerfile: 'docker/Dockerfile' } }) }]));
    assert.throws(() => inspectProject(custom, opts), { code: 'dockerfile_missing', message: /docker\/Dockerfile/ });
  });

  it('a project tarred with its folder is nested_project_root, saying to tar from inside it', async () => {
    const dir = await makeTree({ 'my-project/Dockerfile': 'FROM x', 'my-project/script.py': 'x' });
    const result = await accept(await gnuTar(dir, { gzip: true }));
    assert.throws(() => inspectProject(result, opts), (error: unknown) => {
      assert.ok(isAppError(error));
      assert.equal(error.code, 'nested_project_root');
      assert.equal(error.status, 422);
      assert.match(error.message, /tar czf code\.tar\.gz -C my-project \./);
      return true;
    });
  });

  it('an invalid manifest is invalid_manifest with each problem', async () => {
    const result = await accept(await py([DOCKERFILE, { name: 'computalot.project.json', data: '{"version": 2' }]));
    assert.throws(() => inspectProject(result, opts), { code: 'invalid_manifest' });
  });
});
