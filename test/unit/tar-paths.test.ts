/**
 * The pure path rules (core/tar-paths) and the project layout check (core/project-layout), without tar.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileEntry } from '../../src/core/content-hash.js';
import { checkProjectLayout } from '../../src/core/project-layout.js';
import { checkSymlinkTarget, findEscapingLink, normalizeEntryPath } from '../../src/core/tar-paths.js';

describe('normalizeEntryPath', () => {
  it('strips ./, collapses // and . segments, drops the trailing /', () => {
    assert.equal(normalizeEntryPath('./a//b/./c/'), 'a/b/c');
    assert.equal(normalizeEntryPath('././x'), 'x');
    assert.equal(normalizeEntryPath('./'), '');
    assert.equal(normalizeEntryPath('dir.../..x'), 'dir.../..x');
  });

  it('refuses absolute paths, drive roots and any .. segment with unsafe_path', () => {
    for (const raw of ['/etc/passwd', '//server/share', 'C:/x', 'c:x', '\\x', '..', 'a/../b', 'a/..', 'a\\..\\..\\x']) {
      assert.throws(() => normalizeEntryPath(raw), { code: 'unsafe_path', details: { entry: raw } }, raw);
    }
  });
});

describe('symlink targets', () => {
  it('accepts relative targets that stay inside, from the link folder', () => {
    for (const [link, target] of [['a', 'b'], ['lib/x', '../bin/y'], ['a/b/c', '../../d'], ['a', '.'], ['d/l', '..']]) {
      assert.doesNotThrow(() => checkSymlinkTarget(link!, target!), `${link} -> ${target}`);
    }
  });

  it('refuses absolute, empty and escaping targets with unsafe_link', () => {
    for (const [link, target] of [['a', '/etc'], ['a', ''], ['a', '..'], ['x/y', '../../z'], ['a', 'b/../../c'], ['a', '..\\..\\etc']]) {
      assert.throws(() => checkSymlinkTarget(link!, target!), { code: 'unsafe_link' }, `${link} -> ${target}`);
    }
  });

  it('follows links through each other to find one that escapes', () => {
    assert.deepEqual(findEscapingLink(new Map([['a', '.'], ['b', 'a/..']])), { path: 'b', target: 'a/..' });
    assert.deepEqual(findEscapingLink(new Map([['d/up', '..'], ['x', 'd/up/..']])), { path: 'x', target: 'd/up/..' });
    assert.equal(findEscapingLink(new Map([['a', 'sub/deep'], ['b', 'a/../..']])), null);
    assert.equal(findEscapingLink(new Map([['loop1', 'loop2'], ['loop2', 'loop1']])), null);
  });
});

describe('checkProjectLayout', () => {
  const file = (path: string): FileEntry => ({ path, kind: 'file', size: 1, sha256: 'a'.repeat(64) });

  it('passes with a Dockerfile (or a symlink to one) at build.dockerfile', () => {
    checkProjectLayout([file('Dockerfile')], false, 'Dockerfile');
    checkProjectLayout([file('docker/Dockerfile')], true, './docker/Dockerfile');
    checkProjectLayout([{ path: 'Dockerfile', kind: 'symlink', size: 0, target: 'docker/Dockerfile' }], false, 'Dockerfile');
  });

  it('names the nested folder when everything is inside one top-level folder', () => {
    assert.throws(() => checkProjectLayout([file('app/Dockerfile'), file('app/x.py')], false, 'Dockerfile'), {
      code: 'nested_project_root', details: { folder: 'app' },
    });
    assert.throws(() => checkProjectLayout([file('app/computalot.project.json'), file('app/x.py')], false, 'Dockerfile'), {
      code: 'nested_project_root',
    });
  });

  it('is dockerfile_missing otherwise', () => {
    assert.throws(() => checkProjectLayout([file('x.py')], false, 'Dockerfile'), { code: 'dockerfile_missing', details: { path: 'Dockerfile' } });
    // Two top-level folders: not "one folder holding everything".
    assert.throws(() => checkProjectLayout([file('app/Dockerfile'), file('other/x')], false, 'Dockerfile'), { code: 'dockerfile_missing' });
    // A manifest at the root means the layout is intended; only the Dockerfile is missing.
    assert.throws(() => checkProjectLayout([file('app/Dockerfile'), file('computalot.project.json')], true, 'Dockerfile'), { code: 'dockerfile_missing' });
    assert.throws(() => checkProjectLayout([], false, 'Dockerfile'), { code: 'dockerfile_missing' });
  });
});
