/**
 * What changed between two revisions' file lists (the push answer's `tarball_diff`, SPEC §3.1).
 *
 * Invariants:
 * - Each list is sorted by path in UTF-8 byte order and holds each path at most once.
 * - A path is "changed" when its kind, content (sha256), executable bit or link target differs, which is
 *   exactly what the content hash sees; a diff is empty if and only if the content hashes are equal.
 * - Pure: no I/O.
 */
import { comparePaths, type FileEntry } from './content-hash.js';

export interface TarballDiff {
  added_files: string[];
  removed_files: string[];
  changed_files: string[];
}

function sameEntry(a: FileEntry, b: FileEntry): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'symlink') return (a.target ?? '') === (b.target ?? '');
  return a.sha256 === b.sha256 && Boolean(a.executable) === Boolean(b.executable);
}

export function diffFiles(prev: readonly FileEntry[], next: readonly FileEntry[]): TarballDiff {
  const before = new Map(prev.map((entry) => [entry.path, entry]));
  const after = new Map(next.map((entry) => [entry.path, entry]));
  const added: string[] = [];
  const removed: string[] = [];
  const changed: string[] = [];
  for (const [path, entry] of after) {
    const old = before.get(path);
    if (!old) added.push(path);
    else if (!sameEntry(old, entry)) changed.push(path);
  }
  for (const path of before.keys()) {
    if (!after.has(path)) removed.push(path);
  }
  return {
    added_files: added.sort(comparePaths),
    removed_files: removed.sort(comparePaths),
    changed_files: changed.sort(comparePaths),
  };
}
