/**
 * The per-attempt files of the runner protocol (SPEC §7) on the host:
 *
 *   <attemptsRoot>/<task id>-a<attempt>-<random>/   mode 0700, removed after the attempt
 *     payload.json     COMPUTALOT_TASK_PAYLOAD (written before the task starts)
 *     result.json      COMPUTALOT_RESULT_PATH (the task writes it, or not)
 *     progress.jsonl   COMPUTALOT_PROGRESS_PATH (the task appends to it, or not)
 *     scratch/         COMPUTALOT_SCRATCH_DIR (empty at start: the protocol promises an empty folder)
 *
 * Invariants:
 * - Folder names are unique per attempt (a random tag per process plus a counter), so a retry on the same
 *   worker, or a stale folder left by a crash, never hands a task another attempt's files.
 * - Setup of a small payload (< 64 KiB) is synchronous: measured on the dispatch path, the async mkdir
 *   and write waited 1.5–2.7 ms in the thread pool's queue behind other attempts' output files and
 *   cleanups, while the sync calls take ~0.1 ms. Larger payloads are written asynchronously.
 * - The result file is opened non-blocking and without following a symlink, and read only if it is a
 *   regular file of at most `limit` bytes: a FIFO or /dev/zero there can neither hang nor flood the worker,
 *   and a link to a host file cannot make the worker read it.
 * - Removal never touches the checkpoint folder (it lives elsewhere, owned by the caller) and survives
 *   folders the task made read-only. Given the folder's listing taken after the task's processes are gone
 *   (`listAttemptDir`), it unlinks just those entries (a handful of calls instead of a recursive walk);
 *   anything else there (a daemon that outlived its group wrote more) sends it back to the recursive walk.
 *   Only for host processes: inside a sandbox the task owns the folder and could swap it for a symlink.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, fchmodSync, ftruncateSync, mkdirSync, openSync, readdirSync, rmdirSync, rmSync, unlinkSync, writeFileSync, type Dirent } from 'node:fs';
import { chmod, constants, mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AttemptDirPool } from './attempt-dir-pool.js';

export interface AttemptPaths {
  dir: string;
  payload: string;
  result: string;
  progress: string;
  scratch: string;
}

/** Unique suffixes without a call into the system's random source per attempt. */
const PROCESS_TAG = randomBytes(4).toString('hex');
let sequence = 0;

export function attemptPaths(attemptsRoot: string, taskId: string, attempt: number): AttemptPaths {
  // Ids come from our own store, but a path component is no place to trust that.
  const safeId = taskId.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'task';
  sequence += 1;
  const dir = join(attemptsRoot, `${safeId}-a${attempt}-${PROCESS_TAG}${sequence.toString(36)}`);
  return {
    dir,
    payload: join(dir, 'payload.json'),
    result: join(dir, 'result.json'),
    progress: join(dir, 'progress.jsonl'),
    scratch: join(dir, 'scratch'),
  };
}

const SYNC_PAYLOAD_BYTES = 64 * 1024;

/**
 * Creates the folder, the empty scratch folder, the payload file, and the checkpoint folder if asked;
 * with a `pool` (process runtime), reuses an emptied folder when one is kept (attempt-dir-pool.ts).
 *
 * A payload under 64 KiB (the usual case) is written synchronously and the answer is `true`: the caller
 * can then launch the task in the same turn of the event loop, ahead of whatever else that turn queued.
 * On a direct dispatch that is the submit's HTTP answer, which went out 0.2 ms before the launch while
 * the files were awaited (PostgreSQL, timestamps in the server). Larger payloads: a promise.
 */
export function createAttemptFiles(paths: AttemptPaths, payload: unknown, checkpointDir: string | null, pool: AttemptDirPool | null = null): true | Promise<void> {
  const json = JSON.stringify(payload === undefined ? {} : payload);
  if (json.length >= SYNC_PAYLOAD_BYTES) return createLarge(paths, json, checkpointDir);
  if (checkpointDir !== null) mkdirSync(checkpointDir, { recursive: true });
  if (pool?.take(paths.dir)) {
    if (rewriteKept(paths, json)) return true;
    rmSync(paths.dir, { recursive: true, force: true });
  }
  // Two plain mkdirs: a recursive one first fails on the missing parent, then climbs.
  try {
    mkdirSync(paths.dir, { mode: 0o700 });
  } catch {
    mkdirSync(paths.dir, { recursive: true, mode: 0o700 });
  }
  mkdirSync(paths.scratch, { mode: 0o700 });
  writeFileSync(paths.payload, json, { mode: 0o600 });
  return true;
}

async function createLarge(paths: AttemptPaths, json: string, checkpointDir: string | null): Promise<void> {
  const checkpoint = checkpointDir === null ? undefined : mkdir(checkpointDir, { recursive: true });
  // Settle it before anything can throw, so a rejected mkdir is never left unhandled.
  checkpoint?.catch(() => {});
  await mkdir(paths.scratch, { recursive: true, mode: 0o700 });
  await Promise.all([writeFile(paths.payload, json, { mode: 0o600 }), checkpoint]);
}

/** Readies a kept folder: modes back to the protocol's (its last task may have changed them), new payload. */
function rewriteKept(paths: AttemptPaths, json: string): boolean {
  let fd: number | null = null;
  try {
    chmodSync(paths.dir, 0o700);
    chmodSync(paths.scratch, 0o700);
    // Overwrite, then cut to length: O_TRUNC first freed the file's block on every attempt, and that open
    // was the costliest call of a fan-out's main thread (134 µs, CPU profile); a payload under a block
    // rewritten in place frees nothing.
    fd = openSync(paths.payload, constants.O_WRONLY | constants.O_NOFOLLOW);
    fchmodSync(fd, 0o600);
    const bytes = Buffer.from(json);
    writeFileSync(fd, bytes);
    ftruncateSync(fd, bytes.length);
    return true;
  } catch {
    return false;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

export interface ResultFile {
  text: string | null;
  bytes: number;
}

/** Reads the result file: text null when missing, not a regular file, or larger than `limit`. */
export async function readResultFile(path: string, limit: number): Promise<ResultFile> {
  let handle;
  try {
    // O_NOFOLLOW: in a sandbox the task owns this folder, and a result.json that is a symlink to a host
    // file must not make the worker read that file.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch {
    return { text: null, bytes: 0 };
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) return { text: null, bytes: 0 };
    if (stat.size > limit) return { text: null, bytes: stat.size };
    // At most limit + 1 bytes: one past the limit is enough to know a file that grew is too large.
    const chunks: Buffer[] = [];
    let total = 0;
    const step = Math.max(stat.size + 1, 64 * 1024);
    while (total <= limit) {
      const buffer = Buffer.allocUnsafe(Math.min(step, limit + 1 - total));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, total);
      if (bytesRead === 0) break;
      chunks.push(buffer.subarray(0, bytesRead));
      total += bytesRead;
    }
    if (total > limit) return { text: null, bytes: Math.max(total, stat.size) };
    return { text: Buffer.concat(chunks, total).toString('utf8'), bytes: total };
  } catch {
    return { text: null, bytes: 0 };
  } finally {
    await handle.close().catch(() => {});
  }
}

/** The attempt folder's entries (one call), or null when it cannot be read. */
export function listAttemptDir(dir: string): Dirent[] | null {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return null;
  }
}

/** Removes exactly the listed entries and the folder; false (leaving the rest) when anything else is there. */
function removeListed(dir: string, listing: Dirent[]): boolean {
  try {
    for (const entry of listing) {
      if (entry.isDirectory()) rmdirSync(join(dir, entry.name)); // only if empty, as scratch/ usually is
      else unlinkSync(join(dir, entry.name));
    }
    rmdirSync(dir);
    return true;
  } catch {
    return false;
  }
}

/**
 * Best effort: an attempt folder the worker cannot remove must not fail the attempt. `listing`: see the
 * invariants above (host processes only).
 */
export async function removeAttemptFiles(dir: string, listing: Dirent[] | null = null, pool: AttemptDirPool | null = null): Promise<boolean> {
  if (listing && pool?.give(dir)) return true;
  if (listing && removeListed(dir, listing)) return true;
  try {
    await rm(dir, { recursive: true, force: true, maxRetries: 2 });
    return true;
  } catch {
    // A task may chmod its folders to 0500; give them back their write bit and try once more.
    await restoreWriteBits(dir).catch(() => {});
    return rm(dir, { recursive: true, force: true }).then(() => true, () => false);
  }
}

async function restoreWriteBits(dir: string): Promise<void> {
  await chmod(dir, 0o700);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await restoreWriteBits(join(dir, entry.name)).catch(() => {});
  }
}
