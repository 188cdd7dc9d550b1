/**
 * The last N bytes of a stream, kept without copying every chunk (stdout for SPEC §7's result fallback:
 * "the last stdout line that parses as a JSON object").
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

  text(): string {
    return Buffer.concat(this.chunks, this.size).toString('utf8');
  }
}
