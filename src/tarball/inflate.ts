/**
 * First stage of reading a tarball: recognise the body (magic.ts), gunzip it with node:zlib when it is
 * gzip, count the tar bytes, and hand them on. The tar parsing is the next stage's (scan.ts).
 *
 * Invariants:
 * - We inflate, never node-tar: every inflated byte is counted, and the moment the count passes
 *   `maxExpandedBytes` the inflater is destroyed (413), so a gzip bomb stops within one zlib chunk.
 * - The first 512 bytes of the tar stream are checked to be a tar header before anything is handed on,
 *   so the parser's own decompression sniffing can never trigger.
 * - Only the first 512 bytes are ever buffered; `write()` resolves when zlib can take more (backpressure).
 * - Every failure goes to `sink.fail` (never thrown into a stream callback); after `stop()` nothing more is
 *   handed on and pending writes resolve.
 */
import { once } from 'node:events';
import { createGunzip, type Gunzip, type ZlibOptions } from 'node:zlib';
import { AppError, formatBytes } from '../core/errors.js';
import { checkInnerTar, invalidTarball, sniffBody, type Outer } from './magic.js';

export interface TarSink {
  /** Bytes of the tar stream itself (inflated, or the raw body of a plain tar). */
  tar(chunk: Buffer): void;
  /** The tar stream ended (and, for gzip, its CRC matched). */
  end(): void;
  fail(error: unknown): void;
}

function gzipFailure(error: NodeJS.ErrnoException): AppError {
  if (error.code === 'Z_BUF_ERROR') return invalidTarball('the gzip data is truncated (it ends unexpectedly)');
  return invalidTarball(`the gzip data is corrupt (${error.message})`);
}

export class Inflater {
  expandedBytes = 0;
  outer: Outer | undefined;
  private head: Buffer[] | null = [];
  /** First bytes of the inflated stream, until they prove to be a tar header. */
  private innerHead: Buffer | null = null;
  private gunzip: Gunzip | undefined;
  private stopped = false;
  private readonly halted: Promise<void>;
  private halt!: () => void;

  constructor(
    private readonly maxExpandedBytes: number,
    private readonly sink: TarSink,
  ) {
    this.halted = new Promise((resolve) => (this.halt = resolve));
  }

  /** Takes raw body bytes; resolves when more may be written. */
  write(chunk: Buffer): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.head) {
      this.head.push(chunk);
      const buffered = Buffer.concat(this.head);
      if (buffered.length < 512) return Promise.resolve();
      return this.decide(buffered) ? this.push(buffered) : Promise.resolve();
    }
    return this.push(chunk);
  }

  end(): void {
    if (this.stopped) return;
    if (this.head) {
      const buffered = Buffer.concat(this.head);
      if (!this.decide(buffered)) return;
      void this.push(buffered);
    }
    if (this.gunzip) this.gunzip.end();
    else this.finish();
  }

  stop(): void {
    this.stopped = true;
    this.gunzip?.destroy();
    this.halt();
  }

  private decide(head: Buffer): boolean {
    this.head = null;
    try {
      this.outer = sniffBody(head);
    } catch (error) {
      this.sink.fail(error);
      return false;
    }
    if (this.outer === 'gzip') {
      this.innerHead = Buffer.alloc(0);
      // Larger chunks and a 1 MiB write buffer let zlib (on the thread pool) work while the parser and the
      // hashes run here, instead of the two taking turns on every 16 KiB; memory stays bounded by them.
      this.gunzip = createGunzip({ chunkSize: 128 * 1024, highWaterMark: 1024 * 1024 } as ZlibOptions);
      this.gunzip.on('data', (chunk: Buffer) => this.forward(chunk));
      this.gunzip.on('error', (error: NodeJS.ErrnoException) => this.sink.fail(gzipFailure(error)));
      this.gunzip.on('end', () => this.finish());
    }
    return true;
  }

  private push(chunk: Buffer): Promise<void> {
    if (!this.gunzip) {
      this.forward(chunk);
      return Promise.resolve();
    }
    if (this.gunzip.write(chunk)) return Promise.resolve();
    const drained = once(this.gunzip, 'drain').then(() => undefined, () => undefined);
    return Promise.race([drained, this.halted]);
  }

  private forward(chunk: Buffer): void {
    if (this.stopped) return;
    this.expandedBytes += chunk.length;
    if (this.expandedBytes > this.maxExpandedBytes) {
      const limit = this.maxExpandedBytes;
      return this.sink.fail(new AppError('tarball_expanded_too_large', { limit: formatBytes(limit) }, { limit_bytes: limit }));
    }
    if (this.innerHead) {
      this.innerHead = Buffer.concat([this.innerHead, chunk]);
      if (this.innerHead.length < 512) return;
      chunk = this.innerHead;
      this.innerHead = null;
      try {
        checkInnerTar(chunk);
      } catch (error) {
        return this.sink.fail(error);
      }
    }
    this.sink.tar(chunk);
  }

  private finish(): void {
    if (this.stopped) return;
    if (this.innerHead) {
      try {
        checkInnerTar(this.innerHead);
      } catch (error) {
        return this.sink.fail(error);
      }
    }
    this.sink.end();
  }
}
