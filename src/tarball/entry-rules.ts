/**
 * The rules every tarball entry must pass (SPEC §3.3), applied in archive order, and the file tree they
 * build. Shared by intake (push) and extraction (workers), so both always agree on what a tarball holds.
 *
 * Invariants:
 * - Every entry is checked before any of its bytes are used; the first broken rule throws its AppError.
 * - Paths are normalised (core/tar-paths); the same path twice → the last one wins.
 * - Folders are accepted and not listed. Regular files and symlinks are listed. A hard link is listed as a
 *   regular file copying the sha256/size/x bit of its target, which must be an earlier regular file.
 * - Devices, fifos and every type node-tar does not know (sockets, sparse files, tape labels…) are refused.
 * - Only the x bit of a mode is kept: setuid, setgid and sticky bits, and all owners, are dropped.
 * - A path used both as a folder and as a file or symlink is refused (`path_conflict`) in any order, so
 *   nothing is ever written under a symlink and extraction never has to replace a folder.
 * - After the last entry, every symlink is followed through the others; one that leaves the tree is refused.
 * - No I/O; this module knows node-tar's entry type names but not node-tar itself.
 */
import { sortFiles, type FileEntry } from '../core/content-hash.js';
import { AppError } from '../core/errors.js';
import { ancestorsOf, checkSymlinkTarget, findEscapingLink, normalizeEntryPath } from '../core/tar-paths.js';

/** The parts of a tar entry the rules look at (node-tar's `ReadEntry` has all of them). */
export interface RawEntry {
  path: string;
  type: string;
  mode?: number | undefined;
  linkpath?: string | undefined;
  size?: number | undefined;
}

export type Decision =
  | { action: 'skip'; path: string }
  | { action: 'read'; path: string; executable: boolean }
  | { action: 'symlink' | 'hardlink'; path: string };

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const DIR_TYPES = new Set(['Directory', 'GNUDumpDir']);
const UNSUPPORTED: Record<string, string> = {
  CharacterDevice: 'character device',
  BlockDevice: 'block device',
  FIFO: 'fifo (named pipe)',
  SparseFile: 'sparse file',
};

export class TreeBuilder {
  private readonly files = new Map<string, FileEntry>();
  /** Every folder seen, explicit or implied, with the entry that made it one (for conflict messages). */
  private readonly folders = new Map<string, string>();
  /** Paths whose last entry was a hard link (extraction turns them into copies). */
  readonly hardlinks = new Set<string>();
  private entries = 0;

  constructor(private readonly maxEntries: number) {}

  get entryCount(): number {
    return this.entries;
  }

  /** Checks one entry and says what to do with its data. Throws the AppError of the first broken rule. */
  begin(raw: RawEntry): Decision {
    this.entries += 1;
    if (this.entries > this.maxEntries) {
      throw new AppError('tarball_too_many_entries', { limit: this.maxEntries }, { limit: this.maxEntries });
    }
    const path = normalizeEntryPath(raw.path);
    if (DIR_TYPES.has(raw.type)) {
      if (path !== '') this.addFolder(path, `${path}/`);
      return { action: 'skip', path };
    }
    const known = FILE_TYPES.has(raw.type) || raw.type === 'SymbolicLink' || raw.type === 'Link';
    if (!known) {
      const kind = UNSUPPORTED[raw.type] ?? `entry of unsupported type "${raw.type}" (such as a socket)`;
      throw new AppError('unsupported_entry', { entry: raw.path, kind }, { entry: raw.path, kind });
    }
    // The root itself can only be a folder: a file or link there would replace the extraction directory.
    if (path === '') throw new AppError('unsafe_path', { entry: raw.path }, { entry: raw.path });
    for (const folder of ancestorsOf(path)) this.addFolder(folder, path);
    if (raw.type === 'SymbolicLink') {
      const target = raw.linkpath ?? '';
      checkSymlinkTarget(path, target);
      this.put({ path, kind: 'symlink', size: 0, target });
      return { action: 'symlink', path };
    }
    if (raw.type === 'Link') {
      this.link(path, raw.linkpath ?? '');
      return { action: 'hardlink', path };
    }
    return { action: 'read', path, executable: ((raw.mode ?? 0) & 0o111) !== 0 };
  }

  /** Records a regular file once its bytes have been hashed. */
  addFile(path: string, size: number, sha256: string, executable: boolean): void {
    this.put({ path, kind: 'file', size, sha256, executable });
  }

  /** The final tree, sorted by path; throws if a symlink leaves the tree through other symlinks. */
  finish(): FileEntry[] {
    const links = new Map<string, string>();
    for (const entry of this.files.values()) {
      if (entry.kind === 'symlink') links.set(entry.path, entry.target ?? '');
    }
    const escaping = findEscapingLink(links);
    if (escaping) {
      const { path, target } = escaping;
      throw new AppError('unsafe_link', { entry: path, target }, { entry: path, target });
    }
    return sortFiles([...this.files.values()]);
  }

  private link(path: string, rawTarget: string): void {
    let target: string | null = null;
    try {
      target = normalizeEntryPath(rawTarget);
    } catch {
      // An absolute or `..` target can never be an earlier file of this archive.
    }
    const source = target === null ? undefined : this.files.get(target);
    if (!source || source.kind !== 'file') {
      throw new AppError('invalid_hardlink', { entry: path, target: rawTarget }, { entry: path, target: rawTarget });
    }
    this.put({ ...source, path });
    this.hardlinks.add(path);
  }

  private put(entry: FileEntry): void {
    const user = this.folders.get(entry.path);
    if (user !== undefined) {
      throw new AppError('path_conflict', { entry: entry.path, other: user }, { entry: entry.path, other: user });
    }
    // A later entry at the same path replaces a hard link; link() re-adds the path when it is one.
    this.hardlinks.delete(entry.path);
    this.files.set(entry.path, entry);
  }

  private addFolder(folder: string, user: string): void {
    if (this.files.has(folder)) {
      throw new AppError('path_conflict', { entry: folder, other: user }, { entry: folder, other: user });
    }
    if (!this.folders.has(folder)) this.folders.set(folder, user);
  }
}
