/**
 * What an attempt keeps of its stdout for SPEC §7's result fallback ("the last stdout line that parses as
 * a JSON object"): the last N bytes of a stream, kept without copying every chunk (TailBuffer), and the
 * last object-like line of the whole stream (LastObjectLine); StdoutCapture holds both.
 *
 * Invariants:
 * - Holds at most `cap` bytes: chunks are kept by reference (copied only when they are small views of a
 *   big allocation) and the oldest is trimmed when the total passes the cap, so a task writing GBs costs
 *   O(cap) memory.
 * - `text()` decodes once, at the end; a multi-byte character cut at the front becomes U+FFFD, which
 *   cannot turn a non-JSON line into a JSON one.
 */

export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    if (chunk.length >= this.cap) {
      this.chunks = [chunk.subarray(chunk.length - this.cap)];
      this.size = this.cap;
      return;
    }
    // A small view of a big pooled allocation would pin the whole allocation: keep a copy instead.
    this.chunks.push(chunk.buffer.byteLength > 4 * chunk.length + 1024 ? Buffer.from(chunk) : chunk);
    this.size += chunk.length;
    while (this.size > this.cap) {
      const first = this.chunks[0]!;
      const excess = this.size - this.cap;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }

  /** Bytes held now (at most `cap`). */
  get length(): number {
    return this.size;
  }

  text(): string {
    return Buffer.concat(this.chunks, this.size).toString('utf8');
  }
}

const NL = 0x0a;
const BLANK = new Set([0x20, 0x09, 0x0d]);

/**
 * The last line of a stream that looks like a JSON object: "{" … "}" once trimmed, at most `max` bytes.
 * Lines that start with anything else are skipped as they stream by, unbuffered, so this costs nothing
 * for ordinary output and at most `max` bytes for one long line.
 */
export class LastObjectLine {
  private mode: 'start' | 'keep' | 'skip' = 'start';
  private parts: Buffer[] = [];
  private kept = 0;
  private offset = 0;
  private lineStart = 0;
  private found: { text: string; start: number } | null = null;

  constructor(private readonly max: number) {}

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (this.mode === 'start') {
        const byte = chunk[pos]!;
        if (byte === NL || BLANK.has(byte)) {
          pos += 1;
          continue;
        }
        this.mode = byte === 0x7b ? 'keep' : 'skip';
        this.lineStart = this.offset + pos;
      }
      const nl = chunk.indexOf(NL, pos);
      const end = nl === -1 ? chunk.length : nl;
      if (this.mode === 'keep') {
        this.kept += end - pos;
        if (this.kept > this.max) this.drop();
        else this.parts.push(Buffer.from(chunk.subarray(pos, end))); // a copy: chunks may be pooled views
      }
      if (nl === -1) break;
      if (this.mode === 'keep') this.close();
      this.mode = 'start';
      pos = nl + 1;
    }
    this.offset += chunk.length;
  }

  /** The last such line (an unterminated last line counts) and the stream offset of its "{", or null. */
  last(): { text: string; start: number } | null {
    if (this.mode === 'keep') {
      this.close();
      this.mode = 'start';
    }
    return this.found;
  }

  private close(): void {
    const text = Buffer.concat(this.parts, this.kept).toString('utf8').trimEnd();
    if (text.endsWith('}')) this.found = { text, start: this.lineStart };
    this.drop();
  }

  private drop(): void {
    this.mode = this.mode === 'keep' ? 'skip' : this.mode;
    this.parts = [];
    this.kept = 0;
  }
}

/**
 * What SPEC §7's stdout fallback reads ("the last stdout line that parses as a JSON object"): the last
 * `tailBytes` of stdout, with the last object-like line of the whole stream put in front of them when it
 * is older than that (or longer), so a result followed by a long log, or a result line over 64 KiB, is
 * still found. Reading lines from the end, the caller meets the tail's lines first, then that line: the
 * same order as in the stream. Only when that line does not parse are earlier ones looked for, and then
 * only in the tail.
 */
export class StdoutCapture {
  private readonly tail: TailBuffer;
  private readonly lastLine: LastObjectLine;
  private total = 0;

  constructor(tailBytes: number, maxLineBytes: number) {
    this.tail = new TailBuffer(tailBytes);
    this.lastLine = new LastObjectLine(maxLineBytes);
  }

  push(chunk: Buffer): void {
    this.tail.push(chunk);
    this.lastLine.push(chunk);
    this.total += chunk.length;
  }

  text(): string {
    const tail = this.tail.text();
    const line = this.lastLine.last();
    const tailStart = this.total - this.tail.length;
    if (!line || line.start >= tailStart) return tail;
    // The tail begins inside an older line (maybe that one): drop the fragment, all of it if no line ends.
    const nl = tail.indexOf('\n');
    return `${line.text}\n${nl === -1 ? '' : tail.slice(nl + 1)}`;
  }
}
