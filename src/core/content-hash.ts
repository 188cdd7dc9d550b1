/**
 * The canonical content hash of a project revision (SPEC §3.2).
 *
 * Invariants:
 * - The hash depends only on what a checkout would contain: for each regular file its path, whether it is
 *   executable (any x bit) and the sha256 of its bytes; for each symlink its path and target. Directories,
 *   mtimes, owners, modes other than the x bit, entry order and compression never enter it, so GNU tar,
 *   bsdtar, `git archive` and Python's tarfile agree on the same files.
 * - Paths are compared as UTF-8 bytes (not UTF-16 code units, which is what `Array.sort` would use), so the
 *   order is the same in every language that re-implements this.
 * - Each record is `kind NUL path NUL x-flag NUL sha256 NUL` or `kind NUL path NUL target NUL`. Tar paths and
 *   link targets cannot hold NUL, so no two different file sets can produce the same byte stream.
 * - Pure: no I/O. The per-file sha256 values are computed by the tarball intake while it streams.
 */
import { createHash } from 'node:crypto';

/** One regular file or symlink of a project tree; folders are implied by paths and not listed. */
export interface FileEntry {
  /** Normalised relative path: no `./`, no `//`, no trailing `/`, never absolute, never `..`. */
  path: string;
  kind: 'file' | 'symlink';
  /** Bytes of a regular file; 0 for a symlink. */
  size: number;
  /** Lowercase hex sha256 of a regular file's bytes. */
  sha256?: string;
  /** Whether any x bit is set (regular files only). */
  executable?: boolean;
  /** The link target as written in the archive (symlinks only). */
  target?: string;
}

/** Byte-order comparison of two paths, as UTF-8. */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Returns a new array sorted by path in UTF-8 byte order. */
export function sortFiles<T extends { path: string }>(files: readonly T[]): T[] {
  return [...files].sort((a, b) => comparePaths(a.path, b.path));
}

export function contentHash(files: readonly FileEntry[]): string {
  const hash = createHash('sha256');
  const sorted = sortFiles(files);
  for (let i = 0; i < sorted.length; i += 1) {
    const entry = sorted[i]!;
    // A duplicate would make the hash depend on which copy came first; the intake keeps only the last one.
    if (i > 0 && sorted[i - 1]!.path === entry.path) {
      throw new Error(`contentHash: duplicate path "${entry.path}"`);
    }
    if (entry.kind === 'file') {
      if (!entry.sha256 || !/^[0-9a-f]{64}$/.test(entry.sha256)) {
        throw new Error(`contentHash: file "${entry.path}" has no sha256`);
      }
      hash.update(`file\0${entry.path}\0${entry.executable ? 'x' : '-'}\0${entry.sha256}\0`, 'utf8');
    } else {
      hash.update(`symlink\0${entry.path}\0${entry.target ?? ''}\0`, 'utf8');
    }
  }
  return `sha256:${hash.digest('hex')}`;
}
