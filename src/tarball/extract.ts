/**
 * Extracts a stored tarball into a worker's folder with the same rules as the intake (SPEC §3.3: nothing
 * from a tarball is ever written outside the data directory).
 *
 * Invariants:
 * - Nothing is written before the whole archive has passed the intake's rules (scan.ts): a tarball the
 *   intake would refuse leaves `destDir` empty.
 * - `destDir` must be missing or empty; it is resolved with realpath so node-tar's own "is this inside
 *   cwd" checks compare real paths.
 * - node-tar writes regular files and folders only, with `preservePaths: false` (no absolute, no `..`),
 *   `preserveOwner: false` (root must not chown to archive uids), `strict` (any refusal is an error), and
 *   a filter that re-checks every entry and rewrites its mode to 0644/0755 (x bit only: setuid, setgid,
 *   sticky and odd modes such as 0000 are dropped). node-tar opens files with O_NOFOLLOW and refuses
 *   parent folders that are symlinks.
 * - Symlinks are filtered out of node-tar and created last, from the scanned tree (last entry wins), so
 *   no write can ever pass through one. Every folder above them is checked with lstat to be a real folder.
 * - Hard links are made by node-tar inside destDir (the target is an earlier regular file) and then broken
 *   into independent copies, so writing one file never changes another.
 * - We gunzip (node-tar's own inflater would refuse legitimately compressible trees by ratio) and count
 *   inflated bytes against the same limit as the intake.
 */
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readdir, realpath, rename, symlink, unlink, constants } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Unpack, type ReadEntry } from 'tar';
import { AppError, formatBytes } from '../core/errors.js';
import { ancestorsOf, normalizeEntryPath } from '../core/tar-paths.js';
import { TarScanner, type ScanLimits, type ScanResult } from './scan.js';

export const DEFAULT_EXTRACT_LIMITS: ScanLimits = { maxExpandedBytes: 4 * 1024 ** 3, maxEntries: 100_000 };

const FILE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);
const DIR_TYPES = new Set(['Directory', 'GNUDumpDir']);

/** Runs the intake's rules over a stored tarball without writing anything. */
export async function scanTarball(tarballPath: string, limits: ScanLimits = DEFAULT_EXTRACT_LIMITS): Promise<ScanResult> {
  const scanner = new TarScanner(limits);
  for await (const chunk of createReadStream(tarballPath)) {
    await scanner.write(chunk as Buffer);
    if (scanner.isSettled) break;
  }
  scanner.end();
  return scanner.done;
}

export async function extractTarball(
  tarballPath: string,
  destDir: string,
  opts: { limits?: Partial<ScanLimits> } = {},
): Promise<void> {
  const limits = { ...DEFAULT_EXTRACT_LIMITS, ...opts.limits };
  const scan = await scanTarball(tarballPath, limits);
  await mkdir(destDir, { recursive: true });
  if ((await readdir(destDir)).length > 0) throw new Error(`extractTarball: ${destDir} is not empty`);
  const root = await realpath(destDir);
  await unpackFiles(tarballPath, root, scan, limits);
  const byPath = new Map(scan.files.map((file) => [file.path, file]));
  for (const path of scan.hardlinks) {
    const abs = join(root, path);
    const copy = join(dirname(abs), `.computalot-copy-${randomUUID()}`);
    await copyFile(abs, copy, constants.COPYFILE_EXCL);
    await chmod(copy, byPath.get(path)?.executable ? 0o755 : 0o644);
    await rename(copy, abs);
  }
  for (const file of scan.files) {
    if (file.kind !== 'symlink') continue;
    await ensureRealFolders(root, file.path);
    const abs = join(root, file.path);
    // An earlier entry at this path may have left a regular file; the symlink came last, so it wins.
    await unlink(abs).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await symlink(file.target ?? '', abs);
  }
}

/** Creates the folders above `path` inside `root`, refusing any that exists as something else. */
async function ensureRealFolders(root: string, path: string): Promise<void> {
  for (const folder of ancestorsOf(path)) {
    const abs = join(root, folder);
    const stat = await lstat(abs).catch(() => null);
    if (stat === null) await mkdir(abs, { mode: 0o755 });
    else if (!stat.isDirectory()) throw new Error(`extractTarball: ${folder} is not a real folder`);
  }
}

/**
 * Extracts the regular files, folders and hard links of an archive with node-tar. Exported for tests that
 * prove node-tar's layer refuses a malicious archive on its own; callers use `extractTarball`.
 */
export async function unpackFiles(
  tarballPath: string,
  root: string,
  scan: Pick<ScanResult, 'compression'>,
  limits: ScanLimits = DEFAULT_EXTRACT_LIMITS,
): Promise<void> {
  let refused: AppError | null = null;
  const unpack: Unpack = new Unpack({
    cwd: root,
    strict: true,
    preservePaths: false,
    preserveOwner: false,
    unlink: false,
    brotli: false,
    zstd: false,
    filter: (_path, stat) => {
      const entry = stat as ReadEntry;
      try {
        normalizeEntryPath(entry.path);
        if (DIR_TYPES.has(entry.type)) entry.mode = 0o755;
        else if (FILE_TYPES.has(entry.type)) entry.mode = ((entry.mode ?? 0) & 0o111) !== 0 ? 0o755 : 0o644;
        else if (entry.type === 'Link') normalizeEntryPath(entry.linkpath ?? '/');
        else if (entry.type === 'SymbolicLink') return false;
        else throw new AppError('unsupported_entry', { entry: entry.path, kind: entry.type }, { entry: entry.path, kind: entry.type });
        return true;
      } catch (error) {
        refused ??= error as AppError;
        // A plain Error: node-tar decorates what it is given with its own fields.
        unpack.abort(new Error(refused.message));
        return false;
      }
    },
  });
  const closed = new Promise<void>((resolve, reject) => {
    unpack.on('close', resolve);
    unpack.on('error', reject);
  });
  closed.catch(() => {});
  let expanded = 0;
  const consume = async (source: AsyncIterable<Buffer>): Promise<void> => {
    for await (const chunk of source) {
      expanded += chunk.length;
      if (expanded > limits.maxExpandedBytes) {
        throw new AppError('tarball_expanded_too_large', { limit: formatBytes(limits.maxExpandedBytes) });
      }
      if (!unpack.write(chunk)) await Promise.race([once(unpack, 'drain'), closed]);
      if (refused) throw refused;
    }
    unpack.end();
    await closed;
  };
  try {
    if (scan.compression === 'gzip') await pipeline(createReadStream(tarballPath), createGunzip(), consume);
    else await pipeline(createReadStream(tarballPath), consume);
  } catch (error) {
    throw refused ?? error;
  }
}
