// @ts-check
/**
 * The wire format between the server and its spawner process (spawner.mjs), shared by both sides. Plain
 * JavaScript on purpose: the spawner runs on bare `node`, without tsx, and must load nothing of the server's
 * TypeScript. Types (and the protocol's messages) are in frames.d.mts beside this file.
 *
 *   frame = u32le headerBytes · u32le dataBytes · header (JSON, UTF-8) · data (raw bytes)
 *
 * Invariants:
 * - Output bytes travel raw in `data`, never inside the JSON: no base64, no copy into a string, so a task's
 *   binary stdout comes out byte for byte.
 * - The reader copies a frame only when it spans chunks, and then once, when all of it has arrived (never a
 *   growing buffer re-concatenated per chunk), so a multi-MB frame costs one copy, not O(n²).
 * - `data` handed to the callback may be a view of a bigger buffer; consumers that keep small views copy
 *   them (TailBuffer does).
 */

const EMPTY = Buffer.alloc(0);

/**
 * One frame in a single buffer. `data` may be several chunks (coalesced output): each is copied once, into
 * place, rather than concatenated first.
 * @param {object} header
 * @param {readonly Buffer[]} [data]
 * @returns {Buffer}
 */
export function encodeFrame(header, data = []) {
  const json = JSON.stringify(header);
  const headBytes = Buffer.byteLength(json);
  let dataBytes = 0;
  for (const chunk of data) dataBytes += chunk.length;
  const frame = Buffer.allocUnsafe(8 + headBytes + dataBytes);
  frame.writeUInt32LE(headBytes, 0);
  frame.writeUInt32LE(dataBytes, 4);
  let at = 8 + frame.write(json, 8, 'utf8');
  for (const chunk of data) at += chunk.copy(frame, at);
  return frame;
}

/** Splits a byte stream into frames. */
export class FrameReader {
  /** @type {Buffer[]} */
  #chunks = [];
  #size = 0;
  /** Bytes the next frame needs before it can be parsed (8 while its length is unknown). */
  #need = 8;

  /**
   * @param {Buffer} chunk
   * @param {(header: any, data: Buffer | null) => void} onFrame
   */
  push(chunk, onFrame) {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    if (this.#size < this.#need) return;
    const buf = this.#chunks.length === 1 ? chunk : Buffer.concat(this.#chunks, this.#size);
    let at = 0;
    let need = 8;
    while (buf.length - at >= 8) {
      const headBytes = buf.readUInt32LE(at);
      const end = at + 8 + headBytes + buf.readUInt32LE(at + 4);
      if (end > buf.length) {
        need = end - at;
        break;
      }
      const header = JSON.parse(buf.toString('utf8', at + 8, at + 8 + headBytes));
      onFrame(header, end > at + 8 + headBytes ? buf.subarray(at + 8 + headBytes, end) : null);
      at = end;
    }
    const rest = at === buf.length ? EMPTY : buf.subarray(at);
    this.#chunks = rest.length > 0 ? [rest] : [];
    this.#size = rest.length;
    this.#need = need;
  }
}
