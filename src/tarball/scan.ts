/**
 * Reads a tarball (gzip or plain) through the inflate stage (inflate.ts) and node-tar's strict `Parser`,
 * applying the entry rules (entry-rules.ts) and hashing each file's bytes as they pass. Used by intake
 * and by extraction.
 *
 * Invariants:
 * - Memory is flat: chunks are hashed and dropped; only the root manifest (≤ 1 MiB) is ever kept.
 * - Broken input (bad header checksum, truncated body, no end-of-archive marker, damaged headers) is
 *   `invalid_tarball` saying what was wrong; nothing here throws into a stream callback: every failure goes
 *   through `fail()`, which settles `done` exactly once and stops the inflater.
 * - After the end-of-archive marker, further bytes are still inflated (the gzip CRC is checked, the
 *   expanded-size count still applies) but no longer parsed.
 */
import { createHash } from 'node:crypto';
import { Parser, type ReadEntry } from 'tar';
import type { FileEntry } from '../core/content-hash.js';
import { formatBytes, isAppError, type AppError } from '../core/errors.js';
import { invalidManifest, MANIFEST_FILE, MAX_MANIFEST_BYTES } from '../core/manifest.js';
import { TreeBuilder } from './entry-rules.js';
import { Inflater } from './inflate.js';
import { invalidTarball } from './magic.js';

export interface ScanLimits {
  maxExpandedBytes: number;
  maxEntries: number;
}

export interface ScanResult {
  compression: 'gzip' | 'none';
  files: FileEntry[];
  manifestText: string | null;
  expandedBytes: number;
  /** Paths listed as files that came from hard links (extraction must turn them into copies). */
  hardlinks: ReadonlySet<string>;
}

function parseFailure(error: Error): AppError {
  const message = error.message.replace(/^TAR_[A-Z_]+: /, '');
  if (/checksum/i.test(message)) return invalidTarball('a tar header has a bad checksum, so the archive is corrupt');
  const needed = /Truncated input \(needed (\d+) more bytes/.exec(message);
  if (needed) return invalidTarball(`it is truncated: its last entry needs ${needed[1]} more bytes than the body holds`);
  if (/Unrecognized archive format/.test(message)) return invalidTarball('it holds no valid tar entries');
  return invalidTarball(`the tar data is damaged (${message})`);
}

export class TarScanner {
  readonly done: Promise<ScanResult>;
  private settle!: { resolve: (result: ScanResult) => void; reject: (error: Error) => void };
  private settled = false;
  private readonly inflater: Inflater;
  private readonly parser: Parser;
  private readonly tree: TreeBuilder;
  private sawEndBlock = false;
  private sawEof = false;
  private manifestText: string | null = null;

  constructor(limits: ScanLimits) {
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.done.catch(() => {}); // callers await it; an early failure must not count as unhandled
    this.inflater = new Inflater(limits.maxExpandedBytes, {
      tar: (chunk) => this.feedTar(chunk),
      end: () => this.endTar(),
      fail: (error) => this.fail(error),
    });
    this.tree = new TreeBuilder(limits.maxEntries);
    this.parser = new Parser({ strict: true, brotli: false, zstd: false });
    this.parser.on('entry', (entry: ReadEntry) => this.onEntry(entry));
    this.parser.on('ignoredEntry', (entry: ReadEntry) =>
      entry.meta ? this.fail(invalidTarball('a pax or long-name header is larger than 1 MiB')) : this.onEntry(entry),
    );
    this.parser.on('error', (error: Error) => this.fail(parseFailure(error)));
    this.parser.on('nullBlock', () => (this.sawEndBlock = true));
    this.parser.on('eof', () => (this.sawEndBlock = this.sawEof = true));
    this.parser.on('end', () => this.complete());
  }

  /** True once `done` has settled: further writes are ignored, so a reader may stop early. */
  get isSettled(): boolean {
    return this.settled;
  }

  /** Takes raw body bytes; resolves when more may be written (at once unless zlib is busy). */
  write(chunk: Buffer): Promise<void> {
    return this.settled ? Promise.resolve() : this.inflater.write(chunk);
  }

  /** No more body bytes; `done` settles once everything has been parsed. */
  end(): void {
    if (!this.settled) this.inflater.end();
  }

  /** Stops at once with the given error (e.g. the body went over its limit). */
  fail(error: unknown): void {
    if (this.settled) return;
    this.settled = true;
    this.inflater.stop();
    const appError = isAppError(error) ? error : invalidTarball(`it could not be read (${String((error as Error)?.message ?? error)})`);
    this.settle.reject(appError);
  }

  private feedTar(chunk: Buffer): void {
    if (this.settled || this.sawEof) return;
    try {
      this.parser.write(chunk);
    } catch (error) {
      this.fail(parseFailure(error as Error));
    }
  }

  private endTar(): void {
    if (this.settled) return;
    if (this.sawEof) this.complete();
    else this.parser.end();
  }

  private onEntry(entry: ReadEntry): void {
    if (this.settled) return void entry.resume();
    let decision;
    try {
      decision = this.tree.begin(entry);
      if (decision.path === MANIFEST_FILE && decision.action !== 'read') {
        const kind = { skip: 'folder', symlink: 'symlink', hardlink: 'hard link' }[decision.action];
        throw invalidManifest([{ path: '', message: `must be a regular file, not a ${kind}` }]);
      }
      if (decision.path === MANIFEST_FILE && entry.size > MAX_MANIFEST_BYTES) {
        throw invalidManifest([{ path: '', message: `is ${formatBytes(entry.size)}, over the limit of 1 MiB` }]);
      }
    } catch (error) {
      entry.resume();
      return this.fail(error);
    }
    if (decision.action !== 'read') return void entry.resume();
    const { path, executable } = decision;
    const hash = createHash('sha256');
    const kept: Buffer[] | null = path === MANIFEST_FILE ? [] : null;
    let size = 0;
    entry.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      size += chunk.length;
      kept?.push(Buffer.from(chunk));
    });
    entry.on('end', () => {
      if (this.settled) return;
      try {
        this.tree.addFile(path, size, hash.digest('hex'), executable);
        if (kept) this.manifestText = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(kept));
      } catch (error) {
        this.fail(isAppError(error) ? error : invalidManifest([{ path: '', message: 'is not UTF-8 text' }]));
      }
    });
    entry.resume();
  }

  private complete(): void {
    if (this.settled) return;
    if (!this.sawEndBlock) {
      return this.fail(invalidTarball('it ends without the end-of-archive marker, so it is probably truncated'));
    }
    let files: FileEntry[];
    try {
      files = this.tree.finish();
    } catch (error) {
      return this.fail(error);
    }
    this.settled = true;
    this.inflater.stop();
    this.settle.resolve({
      compression: this.inflater.outer === 'gzip' ? 'gzip' : 'none',
      files,
      manifestText: this.manifestText,
      expandedBytes: this.inflater.expandedBytes,
      hardlinks: this.tree.hardlinks,
    });
  }
}
