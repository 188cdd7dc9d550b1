/**
 * Recognises what a push body is from its first bytes, whatever its Content-Type (SPEC §3.1).
 *
 * Invariants:
 * - Only gzip (1f 8b) and plain tar (a first 512-byte block whose header checksum is valid, per node-tar's
 *   own `Header`, or that carries the `ustar` magic) are accepted; everything else is refused with a reason
 *   a user can act on: zip and multipart are 415, the rest (empty, bzip2, xz, zstd, text…) 400.
 * - The same check runs on the first block after gunzip, so a gzip of something that is not a tar, or a
 *   tar.gz gzipped twice (which node-tar would silently inflate a second time, uncounted), is refused.
 * - Pure: looks at bytes only.
 */
import { Header } from 'tar';
import { AppError } from '../core/errors.js';

export type Outer = 'gzip' | 'tar';

const HOW_TO_MAKE = 'make a tar.gz instead: `tar czf code.tar.gz -C dir .`';

const startsWith = (head: Buffer, ...bytes: number[]): boolean =>
  head.length >= bytes.length && bytes.every((byte, index) => head[index] === byte);

export function invalidTarball(reason: string): AppError {
  return new AppError('invalid_tarball', { reason }, { reason });
}

function isTarHeader(block: Buffer): boolean {
  if (block.length < 512) return false;
  if (block.subarray(257, 262).toString('latin1') === 'ustar') return true;
  try {
    return new Header(block.subarray(0, 512)).cksumValid === true;
  } catch {
    return false;
  }
}

/** Reasons shared by the outer body and the inside of a gzip stream. */
function notTar(head: Buffer, where: string): AppError {
  if (head.length === 0) return invalidTarball(`${where} is empty`);
  if (startsWith(head, 0x1f, 0x8b)) return invalidTarball(`${where} is gzip-compressed a second time; gzip the tar once`);
  if (startsWith(head, 0x42, 0x5a, 0x68)) return invalidTarball(`${where} is bzip2-compressed; only gzip is supported, ${HOW_TO_MAKE}`);
  if (startsWith(head, 0xfd, 0x37, 0x7a, 0x58, 0x5a)) return invalidTarball(`${where} is xz-compressed; only gzip is supported, ${HOW_TO_MAKE}`);
  if (startsWith(head, 0x28, 0xb5, 0x2f, 0xfd)) return invalidTarball(`${where} is zstd-compressed; only gzip is supported, ${HOW_TO_MAKE}`);
  if (head.length >= 512 && head.subarray(0, 512).every((byte) => byte === 0)) {
    return invalidTarball(`${where} is a tar archive that holds no entries`);
  }
  if (head.length < 512) return invalidTarball(`${where} is only ${head.length} bytes, shorter than one tar header (512 bytes)`);
  if (where === 'the body') {
    return invalidTarball('the body is neither gzip (it does not start with 1f 8b) nor a tar archive (its first header is not a valid tar header)');
  }
  return invalidTarball(`${where} is not a tar archive (its first header is not a valid tar header)`);
}

/**
 * Decides from the first bytes of the body (all of them if shorter than 512). Throws `invalid_tarball` or
 * `unsupported_media_type`.
 */
export function sniffBody(head: Buffer): Outer {
  if (startsWith(head, 0x1f, 0x8b)) return 'gzip';
  if (startsWith(head, 0x50, 0x4b, 0x03, 0x04) || startsWith(head, 0x50, 0x4b, 0x05, 0x06)) {
    throw new AppError('unsupported_media_type', {
      reason: `The body is a zip archive; zip is not supported. Send a gzip-compressed tar: \`tar czf code.tar.gz -C dir .\`, then \`curl --data-binary @code.tar.gz\`.`,
    });
  }
  if (/^--[^\r\n]{1,200}\r\nContent-Disposition: form-data/i.test(head.subarray(0, 512).toString('latin1'))) {
    throw new AppError('unsupported_media_type', {
      reason: 'The body is a multipart form; push takes the tarball itself as the raw body: use `curl --data-binary @code.tar.gz` instead of -F.',
    });
  }
  if (isTarHeader(head)) return 'tar';
  if (head.length === 0) throw invalidTarball('the body is empty');
  throw notTar(head, 'the body');
}

/** Checks the first block of the tar stream inside a gzip body. */
export function checkInnerTar(head: Buffer): void {
  // node-tar's Parser sniffs its first bytes again and would inflate 1f 8b once more, uncounted.
  if (startsWith(head, 0x1f, 0x8b) || !isTarHeader(head)) throw notTar(head, 'the gzip data');
}
