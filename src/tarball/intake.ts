/**
 * Takes in a push body (SPEC §3.1, §3.3): streams it to a new temp file while hashing the raw bytes and,
 * in the same pass, inflating, parsing and checking every entry (scan.ts).
 *
 * Invariants:
 * - One pass, flat memory: each body chunk goes to the file and the scanner; the next chunk is read only
 *   when both have taken it (pipe backpressure), so RSS does not grow with the body.
 * - Every limit stops the intake at once, without waiting for the rest of the body: body over
 *   `maxBodyBytes` (413 tarball_too_large), inflated bytes over `maxExpandedBytes`, entries over
 *   `maxEntries` (413).
 * - On success the temp file (in `tmpDir`) belongs to the caller, who must move it (e.g. into the blob
 *   store, named by `tarballSha256`) or delete it. On any failure it has already been deleted.
 * - On failure the body is unpiped and paused but NOT destroyed, so an HTTP caller can still answer (413,
 *   400…); it should answer with `Connection: close` (or destroy the request) since the rest of the body
 *   was not read.
 * - Errors are AppErrors from core/errors.ts; a body that errors or ends early is `invalid_tarball`.
 */
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { contentHash, type FileEntry } from '../core/content-hash.js';
import { AppError, formatBytes } from '../core/errors.js';
import { invalidTarball } from './magic.js';
import { TarScanner } from './scan.js';

export interface IntakeLimits {
  maxBodyBytes: number;
  maxExpandedBytes: number;
  maxEntries: number;
}

export interface IntakeResult {
  /** The raw body as received, in `tmpDir`; the caller moves or deletes it. */
  tarballPath: string;
  /** Lowercase hex sha256 of the raw body (not prefixed). */
  tarballSha256: string;
  sizeBytes: number;
  compression: 'gzip' | 'none';
  /** Regular files and symlinks, sorted by path (UTF-8 byte order). */
  files: FileEntry[];
  /** `sha256:` + 64 hex (SPEC §3.2). */
  contentHash: string;
  /** Text of the root `computalot.project.json`, or null when there is none. */
  manifestText: string | null;
  /** Bytes of the tar stream after gunzip. */
  expandedBytes: number;
}

export async function takeInTarball(
  body: NodeJS.ReadableStream | Readable,
  opts: { tmpDir: string; limits: IntakeLimits },
): Promise<IntakeResult> {
  const { limits } = opts;
  const tarballPath = join(opts.tmpDir, `push-${randomUUID()}.upload`);
  // A 1 MiB buffer lets disk writes overlap parsing instead of alternating with it per chunk.
  const file = createWriteStream(tarballPath, { flags: 'wx', mode: 0o600, highWaterMark: 1024 * 1024 });
  const bodyHash = createHash('sha256');
  const scanner = new TarScanner(limits);
  let sizeBytes = 0;
  let bodyEnded = false;
  let failed = false;

  let rejectFailure!: (error: unknown) => void;
  const failure = new Promise<never>((_, reject) => (rejectFailure = reject));
  failure.catch(() => {});
  const fail = (error: unknown): void => {
    failed = true;
    scanner.fail(error);
    rejectFailure(error);
  };
  // A scanner failure (bomb, bad entry…) must end the intake even while the body is idle.
  scanner.done.catch(fail);
  file.on('error', fail);

  const sink = new Writable({
    // Lets the socket keep reading (up to 1 MiB) while earlier chunks are still being checked.
    highWaterMark: 1024 * 1024,
    // After a failure the callback is never called: the pipe stalls and nothing more is read.
    write(chunk: Buffer, _encoding, callback) {
      if (failed) return;
      sizeBytes += chunk.length;
      if (sizeBytes > limits.maxBodyBytes) {
        const limit = limits.maxBodyBytes;
        return fail(new AppError('tarball_too_large', { limit: formatBytes(limit) }, { limit_bytes: limit }));
      }
      bodyHash.update(chunk);
      const fileReady = file.write(chunk) ? undefined : once(file, 'drain');
      Promise.all([fileReady, scanner.write(chunk)]).then(() => failed || callback(), fail);
    },
    final(callback) {
      scanner.end();
      file.end();
      callback();
    },
  });

  const onBodyError = (error: Error): void => fail(invalidTarball(`the upload failed before its end (${error.message})`));
  const onBodyEnd = (): void => void (bodyEnded = true);
  const onBodyClose = (): void => {
    if (!bodyEnded) fail(invalidTarball('the upload ended before the whole body was received'));
  };
  body.on('error', onBodyError);
  body.on('end', onBodyEnd);
  body.on('close', onBodyClose);
  body.pipe(sink);

  try {
    const [scan] = await Promise.race([
      Promise.all([scanner.done, once(sink, 'finish'), once(file, 'close')]),
      failure,
    ]);
    return {
      tarballPath,
      tarballSha256: bodyHash.digest('hex'),
      sizeBytes,
      compression: scan.compression,
      files: scan.files,
      contentHash: contentHash(scan.files),
      manifestText: scan.manifestText,
      expandedBytes: scan.expandedBytes,
    };
  } catch (error) {
    body.unpipe(sink);
    body.pause();
    // The caller still owns the body; a late socket error on it must not crash the process.
    body.on('error', () => {});
    sink.destroy();
    file.destroy();
    if (!file.closed) await once(file, 'close').catch(() => {});
    await rm(tarballPath, { force: true });
    throw error;
  } finally {
    body.removeListener('error', onBodyError);
    body.removeListener('end', onBodyEnd);
    body.removeListener('close', onBodyClose);
  }
}
