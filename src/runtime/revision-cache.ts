/**
 * Unpacked revision trees of the `process` runtime: `<workDir>/revisions/sha256-<hex>/`, one per content
 * hash, shared by every attempt (and every project) with that hash.
 *
 * Invariants:
 * - A tree at its final path is complete: extraction goes into `.<name>.tmp-<random>` and is renamed into
 *   place, so a crash mid-extraction leaves only a temp folder (removed by the next unpack of that hash)
 *   and never a half tree that looks ready. A complete tree found on disk after a restart is reused.
 * - One extraction per tree at a time: concurrent `acquire`s share the in-flight promise; a failed one is
 *   forgotten so the next `acquire` tries again.
 * - `discard` moves the tree aside at once (so the next `acquire` extracts afresh) and deletes it when its
 *   last running attempt ends: running tasks keep their cwd (SPEC §5 invalidate: "running tasks finish").
 * - Only content hashes of the canonical form name folders: nothing from the caller becomes a path as is.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { extractTarball } from '../tarball/extract.js';

const HASH = /^sha256:([0-9a-f]{64})$/;

export interface Revision {
  readonly dir: string;
  /** Where attempt folders go: `<workDir>/attempts`. */
  readonly attemptsDir: string;
  /** Resolves true when this entry extracted the tarball, false when it found the tree already there. */
  readonly ready: Promise<boolean>;
  state: 'unpacking' | 'ready' | 'discarded';
  running: number;
  /** Set by `discard` while attempts still run in the tree; removed when `running` drops to 0. */
  trash: string | null;
}

export function revisionFolderName(contentHash: string): string | null {
  const match = HASH.exec(contentHash);
  return match ? `sha256-${match[1]}` : null;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then((s) => s.isDirectory(), () => false);
}

/** Writes a checked tarball's tree into an empty `destDir` (tarball/extract.ts; tests wrap it to count). */
export type Unpacker = (tarballPath: string, destDir: string) => Promise<void>;

export class RevisionCache {
  private readonly entries = new Map<string, Revision>();
  private readonly discarding = new Map<string, Promise<void>>();
  /** Trees moved aside while attempts still run in them: stale-folder cleanup must leave them alone. */
  private readonly inUseTrash = new Set<string>();

  constructor(private readonly extract: Unpacker = extractTarball) {}

  /** The entry for `<workDir>/revisions/<name>`, starting its extraction if nobody has. */
  acquire(workDir: string, name: string, tarballPath: string): Revision {
    const dir = join(workDir, 'revisions', name);
    const existing = this.entries.get(dir);
    if (existing) return existing;
    const attemptsDir = join(workDir, 'attempts');
    const entry: Revision = {
      dir,
      attemptsDir,
      ready: this.unpack(dir, name, tarballPath, attemptsDir),
      state: 'unpacking',
      running: 0,
      trash: null,
    };
    this.entries.set(dir, entry);
    entry.ready.then(
      () => {
        if (entry.state === 'unpacking') entry.state = 'ready';
      },
      () => {
        if (this.entries.get(dir) === entry) this.entries.delete(dir);
      },
    );
    return entry;
  }

  /** The ready entry of a tree, counted as in use until `release`; null if it is not (or no longer) ready. */
  use(dir: string): Revision | null {
    const entry = this.entries.get(dir);
    if (!entry || entry.state !== 'ready') return null;
    entry.running += 1;
    return entry;
  }

  /** Resolves once a tree discarded while in use is deleted, so an attempt's outcome settles after it. */
  async release(entry: Revision): Promise<void> {
    entry.running -= 1;
    const trash = entry.trash;
    if (entry.running > 0 || trash === null) return;
    entry.trash = null;
    await rm(trash, { recursive: true, force: true }).catch(() => {});
    this.inUseTrash.delete(trash);
  }

  discard(dir: string): Promise<void> {
    const entry = this.entries.get(dir);
    if (entry) {
      this.entries.delete(dir);
      entry.state = 'discarded';
    }
    // Chained per tree, and awaited by `unpack`, so a prepare racing a discard never has its fresh tree
    // moved away underneath it.
    const previous = this.discarding.get(dir) ?? Promise.resolve();
    const done: Promise<void> = previous.then(() => this.moveAside(dir, entry)).finally(() => {
      if (this.discarding.get(dir) === done) this.discarding.delete(dir);
    });
    this.discarding.set(dir, done);
    return done;
  }

  private async moveAside(dir: string, entry: Revision | undefined): Promise<void> {
    await entry?.ready.catch(() => {});
    const trash = `${dir}.trash-${randomBytes(4).toString('hex')}`;
    const moved = await rename(dir, trash).then(() => true, () => false);
    if (!moved) return;
    if (entry && entry.running > 0) {
      entry.trash = trash;
      this.inUseTrash.add(trash);
    } else {
      await rm(trash, { recursive: true, force: true });
    }
  }

  private async unpack(dir: string, name: string, tarballPath: string, attemptsDir: string): Promise<boolean> {
    await this.discarding.get(dir)?.catch(() => {});
    const parent = join(dir, '..');
    await Promise.all([mkdir(parent, { recursive: true }), mkdir(attemptsDir, { recursive: true })]);
    if (await isDir(dir)) return false;
    // Leftovers of a crashed extraction or of a discard that could not finish.
    for (const stale of await readdir(parent)) {
      if (this.inUseTrash.has(join(parent, stale))) continue;
      if (stale.startsWith(`.${name}.tmp-`) || stale.startsWith(`${name}.trash-`)) {
        await rm(join(parent, stale), { recursive: true, force: true }).catch(() => {});
      }
    }
    const tmp = join(parent, `.${name}.tmp-${randomBytes(4).toString('hex')}`);
    try {
      await this.extract(tarballPath, tmp);
      await rename(tmp, dir);
      return true;
    } catch (error) {
      await rm(tmp, { recursive: true, force: true }).catch(() => {});
      // Another process sharing this workDir finished the same tree first: theirs is as good as ours.
      if (await isDir(dir)) return false;
      throw error;
    }
  }
}
