/**
 * SPEC §3.2: the content hash depends on file content, not on how the tarball was made. The same tree is
 * tarred by GNU tar, bsdtar, `git archive` and Python's tarfile with different owners, mtimes, formats and
 * gzip levels; all must give one hash. A changed byte, x bit or link target must change it.
 */
import assert from 'node:assert/strict';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { contentHash, type FileEntry } from '../../src/core/content-hash.js';
import { diffFiles } from '../../src/core/tarball-diff.js';
import { takeInTarball } from '../../src/tarball/intake.js';
import {
  bsdTar, cleanupArchives, gitArchive, gnuTar, makeTree, pythonTar, type PyEntry, type TreeSpec,
  toolSkip,
} from '../helpers/archives.js';

const skip = toolSkip('tar', 'bsdtar', 'git', 'python3');

const limits = { maxBodyBytes: 64 * 1024 * 1024, maxExpandedBytes: 256 * 1024 * 1024, maxEntries: 1000 };
let tmp: string;
before(async () => (tmp = await mkdtemp(join(tmpdir(), 'content-hash-'))));
after(async () => {
  await rm(tmp, { recursive: true, force: true });
  await cleanupArchives();
});

async function hashOf(path: string): Promise<string> {
  const result = await takeInTarball(createReadStream(path), { tmpDir: tmp, limits });
  await rm(result.tarballPath);
  return result.contentHash;
}

const longName = `${'deep/'.repeat(12)}${'n'.repeat(80)}.txt`;
const tree: TreeSpec = {
  Dockerfile: 'FROM localhost/base:bookworm\nCOPY . /workspace\n',
  'computalot.project.json': '{"version": 1}\n',
  'bin/run.sh': { content: '#!/bin/sh\necho hi\n', mode: 0o755 },
  'src/app.py': 'print("hello")\n',
  'src/données/été.txt': 'unicode name\n',
  [longName]: 'a path longer than 100 bytes (pax / GNU long name)\n',
  'src/latest.py': { symlink: 'app.py' },
  'empty-dir': { dir: true },
};
/** The same tree as Python tarfile entries, with odd owners, mtimes and a setuid bit that must not count. */
function pyEntries(uid: number, mtime: number): PyEntry[] {
  return [
    { name: 'bin', type: 'dir', uid, mtime },
    { name: 'bin/run.sh', data: '#!/bin/sh\necho hi\n', mode: 0o4755, uid, mtime },
    { name: 'src/latest.py', type: 'symlink', linkname: 'app.py', uid, mtime },
    { name: 'src/app.py', data: 'print("hello")\n', mode: 0o600, uid, mtime },
    { name: './src/données/été.txt', data: 'unicode name\n', uid, mtime },
    { name: longName, data: 'a path longer than 100 bytes (pax / GNU long name)\n', uid, mtime },
    { name: 'computalot.project.json', data: '{"version": 1}\n', mode: 0o664, uid, mtime },
    { name: 'Dockerfile', data: 'FROM localhost/base:bookworm\nCOPY . /workspace\n', uid, mtime },
  ];
}

describe('content hash across tools', { skip }, () => {
  it('is one hash for GNU tar, bsdtar, git archive and Python tarfile, any owner, mtime or gzip level', async () => {
    const dir = await makeTree(tree);
    const archives: Record<string, string> = {
      'gnu plain': await gnuTar(dir),
      'gnu ./ gzip-1 owner nobody mtime 2001': await gnuTar(dir, { dotSlash: true, gzip: 1, owner: 'nobody', mtime: '2001-02-03' }),
      'gnu posix gzip-9 uid 4242': await gnuTar(dir, { format: 'posix', gzip: 9, uid: 4242, mtime: '2030-01-01' }),
      'gnu ustar-incompatible oldgnu': await gnuTar(dir, { format: 'oldgnu' }),
      'bsdtar plain': await bsdTar(dir),
      'bsdtar ./ gzip-9 uid 1234': await bsdTar(dir, { dotSlash: true, gzip: 9, uid: 1234, owner: 'someone' }),
      'git archive tar': await gitArchive(dir),
      'git archive tar.gz -9': await gitArchive(dir, { gzip: 9 }),
      'python pax gzip-3 uid 1000': await pythonTar(pyEntries(1000, 1_000_000), { gzip: 3 }),
      'python gnu plain uid 0': await pythonTar(pyEntries(0, 0), { format: 'gnu' }),
    };
    const hashes = new Map<string, string>();
    for (const [label, path] of Object.entries(archives)) hashes.set(label, await hashOf(path));
    const distinct = new Set(hashes.values());
    assert.equal(distinct.size, 1, `different hashes: ${JSON.stringify(Object.fromEntries(hashes), null, 2)}`);
    assert.match([...distinct][0]!, /^sha256:[0-9a-f]{64}$/);
  });

  it('changes when one byte, the x bit or a link target changes', async () => {
    const base = await hashOf(await gnuTar(await makeTree(tree)));
    const byte = await hashOf(await gnuTar(await makeTree({ ...tree, 'src/app.py': 'print("hellO")\n' })));
    const xbit = await hashOf(await gnuTar(await makeTree({ ...tree, 'src/app.py': { content: 'print("hello")\n', mode: 0o744 } })));
    const link = await hashOf(await gnuTar(await makeTree({ ...tree, 'src/latest.py': { symlink: './app.py' } })));
    assert.equal(new Set([base, byte, xbit, link]).size, 4);
  });
});

describe('contentHash and diffFiles (pure)', () => {
  const sha = (c: string) => c.repeat(64);
  const files: FileEntry[] = [
    { path: 'b', kind: 'file', size: 1, sha256: sha('b'), executable: false },
    { path: 'a', kind: 'file', size: 1, sha256: sha('a'), executable: true },
    { path: 'l', kind: 'symlink', size: 0, target: 'a' },
  ];

  it('ignores input order and sorts by UTF-8 bytes', () => {
    assert.equal(contentHash(files), contentHash([...files].reverse()));
    // U+FF21 sorts after U+10000 in UTF-16 code units but before it in UTF-8 bytes; the hash must not care.
    const wide = [
      { path: '\u{10000}', kind: 'symlink' as const, size: 0, target: 'x' },
      { path: '\uFF21', kind: 'symlink' as const, size: 0, target: 'y' },
    ];
    assert.equal(contentHash(wide), contentHash([...wide].reverse()));
  });

  it('tells a symlink from a file and an empty tree from a non-empty one', () => {
    assert.notEqual(contentHash([]), contentHash(files));
    assert.notEqual(
      contentHash([{ path: 'a', kind: 'symlink', size: 0, target: 'x' }]),
      contentHash([{ path: 'a', kind: 'file', size: 1, sha256: sha('c') }]),
    );
  });

  it('diffs added, removed and changed files, sorted', () => {
    const next: FileEntry[] = [
      { path: 'a', kind: 'file', size: 1, sha256: sha('a'), executable: false }, // x bit dropped
      { path: 'c', kind: 'file', size: 1, sha256: sha('c') },
      { path: 'l', kind: 'symlink', size: 0, target: 'c' },
    ];
    assert.deepEqual(diffFiles(files, next), { added_files: ['c'], removed_files: ['b'], changed_files: ['a', 'l'] });
    assert.deepEqual(diffFiles(files, files), { added_files: [], removed_files: [], changed_files: [] });
  });
});
