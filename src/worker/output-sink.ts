/**
 * Captures one attempt's stdout+stderr (SPEC §7): the whole stream to a file up to 64 MiB (then a marker),
 * the last 10 KB for the task's `output`, the last 4 KB for `live_feedback.output_tail`. Memory stays
 * O(10 KB) whatever the task prints; the file is written with backpressure-free appends in order. The file
 * is created on the first byte: a silent task costs no file to open, close and move (GET /output then falls
 * back to the task's stored `output`, which is empty too).
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { once } from 'node:events';
import { TailBuffer } from '../runtime/output-capture.js';

export const OUTPUT_FILE_CAP = 64 * 1024 * 1024;
export const OUTPUT_KEEP = 10 * 1024;
export const OUTPUT_TAIL = 4 * 1024;

export class OutputSink {
  private file: WriteStream | null = null;
  private written = 0;
  private truncated = false;
  private readonly tail = new TailBuffer(OUTPUT_KEEP);
  changed = false;

  private constructor(readonly path: string) {}

  private closed = false;

  /** The folder of `path` must exist (the agent makes it once at start: no mkdir per attempt). */
  static open(path: string): OutputSink {
    return new OutputSink(path);
  }

  /** Whether anything was written, so a file exists at `path` (after `close`). */
  get hasFile(): boolean {
    return this.written > 0 || this.truncated;
  }

  write(chunk: Buffer): void {
    this.tail.push(chunk);
    this.changed = true;
    if (this.closed || this.truncated || chunk.length === 0) return;
    this.file ??= createWriteStream(this.path, { flags: 'w', mode: 0o600 });
    const room = OUTPUT_FILE_CAP - this.written;
    if (chunk.length <= room) {
      this.file.write(chunk);
      this.written += chunk.length;
      return;
    }
    if (room > 0) this.file.write(chunk.subarray(0, room));
    this.file.write(`\n[computalot: output cut at ${OUTPUT_FILE_CAP / 1024 / 1024} MiB]\n`);
    this.truncated = true;
  }

  /** The last 10 KB (task `output`). */
  output(): string {
    return this.tail.text();
  }

  /** The last 4 KB (`live_feedback.output_tail`). */
  outputTail(): string {
    const text = this.tail.text();
    return text.length > OUTPUT_TAIL ? text.slice(text.length - OUTPUT_TAIL) : text;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (!this.file) return;
    const file = this.file;
    this.file = null;
    file.end();
    await once(file, 'close');
  }
}
