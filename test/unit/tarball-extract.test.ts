/**
 * extractTarball: a good archive comes out as the intake saw it (modes reduced to 0644/0755, hard links as
 * independent copies, symlinks as written, last entry wins); a malicious archive writes nothing outside
 * destDir, both through the full function and through node-tar's layer alone (unpackFiles, no pre-scan).
 */
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { isAppError } from '../../src/core/errors.js';
import { extractTarball, unpackFiles } from '../../src/tarball/extract.js';
import { cleanupArchives, gitArchive, gnuTar, gzipBomb, makeTree, pythonTar, type PyEntry, toolSkip } from '../helpers/archives.js';

const skip = toolSkip('tar', 'git', 'python3');

let sandbox: string;
let dest: string;
let outside: string;
const SENTINEL = 'do not touch\n';

before(async () => (sandbox = await mkdtemp(join(tmpdir(), 'extract-'))));
beforeEach(async () => {
  await rm(join(sandbox, 'dest'), { recursive: true, force: true });
  await rm(join(sandbox, 'outside'), { recursive: true, force: true });
  dest = join(sandbox, 'dest');
  outside = join(sandbox, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'target'), SENTINEL);
});
after(async () => {
  await rm(sandbox, { recursive: true, force: true });
  await cleanupArchives();
});

/** Everything under `dir`, as relative paths (folders end with /). */
async function listTree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = `${prefix}${entry.name}`;
    if (entry.isDirectory()) out.push(`${rel}/`, ...(await listTree(join(dir, entry.name), `${rel}/`)));
    else out.push(rel);
  }
  return out.sort();
}

async function assertNothingOutside(): Promise<void> {
  assert.deepEqual((await readdir(sandbox)).filter((name) => name !== 'dest'), ['outside']);
  assert.deepEqual(await listTree(outside), ['target']);
  assert.equal(await readFile(join(outside, 'target'), 'utf8'), SENTINEL);
}

const mode = async (path: string) => (await stat(path)).mode & 0o7777;

describe('extracting a good archive', { skip }, () => {
  it('writes files, folders, symlinks and hard-link copies with x-bit-only modes', async () => {
    const archive = await pythonTar([
      { name: './', type: 'dir', mode: 0o777 },
      { name: 'Dockerfile', data: 'FROM scratch\n', mode: 0o600 },
      { name: 'bin/run', data: '#!/bin/sh\n', mode: 0o6755, uid: 4242 },
      { name: 'bin/alias', type: 'hardlink', linkname: 'bin/run' },
      { name: 'tmp', type: 'dir', mode: 0o1777 },
      { name: 'lib/current', type: 'symlink', linkname: '../bin/run' },
      { name: 'only/in/a/folder/link', type: 'symlink', linkname: '../../../../Dockerfile' },
      { name: 'replaced', data: 'old' }, { name: 'replaced', type: 'symlink', linkname: 'Dockerfile' },
      { name: 'restored', type: 'symlink', linkname: 'Dockerfile' }, { name: 'restored', data: 'file wins' },
    ], { gzip: true });
    await extractTarball(archive, dest);
    assert.deepEqual(await listTree(dest), [
      'Dockerfile', 'bin/', 'bin/alias', 'bin/run', 'lib/', 'lib/current', 'only/', 'only/in/', 'only/in/a/',
      'only/in/a/folder/', 'only/in/a/folder/link', 'replaced', 'restored', 'tmp/',
    ]);
    assert.equal(await mode(join(dest, 'Dockerfile')), 0o644);
    assert.equal(await mode(join(dest, 'bin/run')), 0o755);
    assert.equal(await mode(join(dest, 'tmp')), 0o755);
    assert.equal(await readFile(join(dest, 'bin/alias'), 'utf8'), '#!/bin/sh\n');
    assert.equal((await stat(join(dest, 'bin/alias'))).nlink, 1, 'the hard link must be a copy');
    assert.notEqual((await stat(join(dest, 'bin/alias'))).ino, (await stat(join(dest, 'bin/run'))).ino);
    assert.equal(await readlink(join(dest, 'lib/current')), '../bin/run');
    assert.equal(await readFile(join(dest, 'only/in/a/folder/link'), 'utf8'), 'FROM scratch\n');
    assert.ok((await lstat(join(dest, 'replaced'))).isSymbolicLink());
    assert.equal(await readFile(join(dest, 'restored'), 'utf8'), 'file wins');
    await assertNothingOutside();
  });

  it('extracts what GNU tar and git archive made, and a highly compressible file', async () => {
    const dir = await makeTree({ Dockerfile: 'FROM x', 'a/b.txt': 'b', 'run.sh': { content: 'x', mode: 0o755 }, 'l': { symlink: 'a/b.txt' } });
    for (const archive of [await gnuTar(dir, { gzip: true, dotSlash: true }), await gitArchive(dir)]) {
      await rm(dest, { recursive: true, force: true });
      await extractTarball(archive, dest);
      assert.deepEqual(await listTree(dest), ['Dockerfile', 'a/', 'a/b.txt', 'l', 'run.sh']);
      assert.equal(await mode(join(dest, 'run.sh')), 0o755);
    }
    await rm(dest, { recursive: true, force: true });
    // 32 MiB of zeros: a ratio far above node-tar's own 1000:1 guard, yet a legitimate file.
    await extractTarball(await gzipBomb(32 * 1024 * 1024), dest);
    assert.equal((await stat(join(dest, 'zeros.bin'))).size, 32 * 1024 * 1024);
  });

  it('refuses a destination that is not empty', async () => {
    await mkdir(dest);
    await writeFile(join(dest, 'x'), 'x');
    await assert.rejects(extractTarball(await pythonTar([{ name: 'a', data: 'a' }]), dest), /not empty/);
  });
});

describe('a malicious archive writes nothing outside destDir', { skip }, () => {
  const attacks = (): Array<[string, PyEntry[], string]> => [
    ['absolute path', [{ name: join(outside, 'pwned'), data: 'x' }, { name: join(outside, 'target'), data: 'x' }], 'unsafe_path'],
    ['.. path', [{ name: 'ok', data: 'x' }, { name: '../outside/target', data: 'pwned' }], 'unsafe_path'],
    ['write through a symlink', [{ name: 'evil', type: 'symlink', linkname: '../outside' }, { name: 'evil/target', data: 'pwned' }], 'unsafe_link'],
    ['write through an absolute symlink', [{ name: 'evil', type: 'symlink', linkname: outside }, { name: 'evil/pwned', data: 'x' }], 'unsafe_link'],
    ['in-tree symlink then a file under it', [{ name: 'd/x', data: 'x' }, { name: 'evil', type: 'symlink', linkname: 'd' }, { name: 'evil/pwned', data: 'x' }], 'path_conflict'],
    ['symlink chain', [{ name: 'a', type: 'symlink', linkname: '.' }, { name: 'b', type: 'symlink', linkname: 'a/..' }], 'unsafe_link'],
    ['hard link to a file outside', [{ name: 'h', type: 'hardlink', linkname: join(outside, 'target') }], 'invalid_hardlink'],
    ['hard link up the tree', [{ name: 'h', type: 'hardlink', linkname: '../outside/target' }], 'invalid_hardlink'],
    ['device', [{ name: 'null', type: 'chr' }], 'unsupported_entry'],
    ['fifo', [{ name: 'pipe', type: 'fifo' }], 'unsupported_entry'],
  ];

  it('through extractTarball: refused with the intake code, destDir left empty', async () => {
    for (const [label, entries, code] of attacks()) {
      await rm(dest, { recursive: true, force: true });
      const error = await extractTarball(await pythonTar(entries), dest).then(() => null, (e: unknown) => e);
      assert.ok(isAppError(error), `${label}: ${String(error)}`);
      assert.equal(error.code, code, label);
      await assertNothingOutside();
      const left = await readdir(dest).catch(() => []);
      assert.deepEqual(left, [], `${label}: destDir not empty`);
    }
  });

  it('through node-tar alone (no pre-scan): still nothing outside destDir', async () => {
    for (const [label, entries] of attacks()) {
      await rm(dest, { recursive: true, force: true });
      await mkdir(dest);
      await unpackFiles(await pythonTar(entries), dest, { compression: 'none' }).catch(() => undefined);
      await assertNothingOutside().catch((error: Error) => assert.fail(`${label}: ${error.message}`));
      for (const path of await listTree(dest)) {
        assert.ok(!(await lstat(join(dest, path))).isSymbolicLink(), `${label}: node-tar created symlink ${path}`);
      }
    }
  });
});
