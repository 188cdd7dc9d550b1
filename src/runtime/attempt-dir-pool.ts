/**
 * Emptied attempt folders kept for the next attempt (the `process` runtime only).
 *
 * Why: creating and deleting a folder, its scratch/ and its payload.json for every attempt made ext4's
 * inode allocator the worker's hottest kernel path (`perf`: ext4_mkdir → recently_deleted scanning the
 * inodes freed a moment ago), and a fan-out of short tasks ran at 800/s instead of 1,200/s+. A folder
 * whose attempt left nothing behind but the protocol's files is instead emptied, renamed aside, and renamed
 * to the next attempt's own unique name; its payload.json is rewritten in place. A new inode is only needed
 * for the files a task creates itself (its result.json, its progress file).
 *
 * Invariants:
 * - A folder is kept only if, after its task's processes are gone, it holds nothing but a regular
 *   payload.json, an empty scratch/ folder, and a result.json / progress.jsonl (which are unlinked here).
 *   Anything else (more files, a symlink, a non-empty scratch/) and it is removed as before. The folder
 *   is listed afresh here, and again when taken: a process that escaped its task's group could still
 *   write into it in between, and such a folder is removed, never handed on.
 * - A taken folder is renamed to the new attempt's unique name before anything is written, so the
 *   attempt's paths and the protocol's promises (an empty scratch/, only its payload) are the same as for
 *   a fresh folder.
 * - At most `max` folders are kept; the rest are removed. Kept folders are named `.free-*` in the attempts
 *   folder and hold only an empty scratch/ and a stale payload.json (mode 0600); a new pool removes those
 *   an earlier process left.
 * - Not for sandboxes: there the task owns the folder from inside and could swap parts of it for links
 *   between the listing and the reuse. On the host, a task runs with the worker's own rights anyway.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, renameSync, rmSync, unlinkSync, type Dirent } from 'node:fs';
import { join } from 'node:path';

const TAG = randomBytes(4).toString('hex');
let sequence = 0;

const DROPPED = new Set(['result.json', 'progress.jsonl']);

export class AttemptDirPool {
  private readonly free: string[] = [];

  constructor(private readonly root: string, private readonly max: number) {
    // Folders a previous server process kept are nobody's now (the pool lives in memory): remove them,
    // so restarts do not pile them up.
    for (const entry of list(root) ?? []) {
      if (entry.name.startsWith('.free-')) rmSync(join(root, entry.name), { recursive: true, force: true });
    }
  }

  /** Moves a kept folder to `dir` (which must not exist); false when none is kept (or the move failed). */
  take(dir: string): boolean {
    for (let from = this.free.pop(); from !== undefined; from = this.free.pop()) {
      try {
        renameSync(from, dir);
      } catch {
        continue; // gone: try the next one, else the caller makes a fresh folder
      }
      if (clean(dir, false)) return true;
      rmSync(dir, { recursive: true, force: true });
    }
    return false;
  }

  /**
   * Keeps `dir` for a later attempt (called once the task's processes are gone) if it holds the
   * protocol's files only; true when kept (the caller must not remove it then).
   */
  give(dir: string): boolean {
    if (this.free.length >= this.max) return false;
    const listing = list(dir);
    if (!listing || !clean(dir, true, listing)) return false;
    try {
      for (const entry of listing) if (DROPPED.has(entry.name)) unlinkSync(join(dir, entry.name));
      sequence += 1;
      const kept = join(this.root, `.free-${TAG}${sequence.toString(36)}`);
      renameSync(dir, kept);
      this.free.push(kept);
      return true;
    } catch {
      return false;
    }
  }
}

function list(dir: string): Dirent[] | null {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return null;
  }
}

/**
 * A regular payload.json and an empty scratch/ folder, and (when `dropping`, at the end of an attempt)
 * maybe a regular result.json and progress.jsonl: nothing else.
 */
function clean(dir: string, dropping: boolean, listing = list(dir)): boolean {
  if (!listing) return false;
  let payload = false;
  let scratch = false;
  for (const entry of listing) {
    if (entry.name === 'payload.json' && entry.isFile()) payload = true;
    else if (entry.name === 'scratch' && entry.isDirectory()) scratch = true;
    else if (!(dropping && DROPPED.has(entry.name) && entry.isFile())) return false;
  }
  if (!payload || !scratch) return false;
  try {
    return readdirSync(join(dir, 'scratch')).length === 0;
  } catch {
    return false;
  }
}
