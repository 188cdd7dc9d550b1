/**
 * Follows the progress file a task appends to (SPEC §7 COMPUTALOT_PROGRESS_PATH): one JSON object per line,
 * `{"progress": 0.4, "message": "…"}`.
 *
 * Invariants:
 * - Each complete, valid line is reported once, in file order; invalid lines are skipped silently (a
 *   task's stray write must not fail it). Valid: an object whose `progress` is a finite number in 0..1;
 *   `message` is kept when it is a string (cut to MAX_MESSAGE chars).
 * - Reads continue from the last offset: the file is append-only by protocol; rewriting it from the start
 *   is not noticed.
 * - Polling (every `pollMs`, one read in flight at a time) rather than fs.watch: inotify misses writes
 *   through other mount namespaces and costs a watch per attempt; one read every 100 ms is cheap.
 * - Bounded: a line longer than MAX_LINE bytes is dropped whole, and a tick reads at most MAX_TICK bytes,
 *   so /dev/zero or a runaway writer cannot stall the worker. The file is opened non-blocking (a FIFO there
 *   cannot hang a thread-pool thread); any read error stops following quietly.
 * - `finish()` reads what is left, including a last line without its newline, then closes the file;
 *   `finish(false)` (the caller listed the folder: no file) skips the read.
 */
import { constants, open, type FileHandle } from 'node:fs/promises';
import type { Progress } from './port.js';

const MAX_LINE = 64 * 1024;
const MAX_TICK = 1024 * 1024;
const MAX_MESSAGE = 1024;

export function parseProgressLine(line: string): Progress | null {
  const text = line.trim();
  if (!text.startsWith('{')) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const { progress, message } = value as { progress?: unknown; message?: unknown };
  if (typeof progress !== 'number' || !Number.isFinite(progress) || progress < 0 || progress > 1) return null;
  return typeof message === 'string' ? { progress, message: message.slice(0, MAX_MESSAGE) } : { progress };
}

export class ProgressFollower {
  private handle: FileHandle | null = null;
  private offset = 0;
  private carry: Buffer = Buffer.alloc(0);
  private dropping = false;
  private stopped = false;
  private inFlight: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly path: string,
    private readonly onProgress: (progress: Progress) => void,
    private readonly pollMs = 100,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.pollMs);
    this.timer.unref();
  }

  async finish(exists = true): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    if (exists || this.handle) await this.tick();
    if (!this.dropping && this.carry.length > 0) this.emit(this.carry.toString('utf8'));
    this.stopped = true;
    await this.handle?.close().catch(() => {});
    this.handle = null;
  }

  private tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.inFlight ??= this.read().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  private async read(): Promise<void> {
    try {
      if (!this.handle) {
        try {
          // Never through a symlink: a sandboxed task owns this folder (see attempt-files.ts).
          this.handle = await open(this.path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
        } catch {
          return; // not written yet
        }
      }
      let budget = MAX_TICK;
      const buffer = Buffer.allocUnsafe(64 * 1024);
      while (budget > 0) {
        const { bytesRead } = await this.handle.read(buffer, 0, Math.min(buffer.length, budget), this.offset);
        if (bytesRead === 0) break;
        this.offset += bytesRead;
        budget -= bytesRead;
        this.consume(buffer.subarray(0, bytesRead));
      }
    } catch {
      this.stopped = true;
    }
  }

  private consume(chunk: Buffer): void {
    // concat copies, so nothing kept here aliases the reused read buffer.
    let data = Buffer.concat([this.carry, chunk]);
    for (let newline = data.indexOf(10); newline !== -1; newline = data.indexOf(10)) {
      // A long line can complete in one chunk after a carry just under the limit: measure the line itself.
      if (!this.dropping && newline <= MAX_LINE) this.emit(data.toString('utf8', 0, newline));
      this.dropping = false;
      data = data.subarray(newline + 1);
    }
    if (this.dropping || data.length > MAX_LINE) {
      this.dropping = true;
      data = Buffer.alloc(0);
    }
    this.carry = data;
  }

  private emit(line: string): void {
    const progress = parseProgressLine(line);
    if (!progress) return;
    try {
      this.onProgress(progress);
    } catch {
      // Callbacks must not throw (port.ts); dropping the throw keeps the attempt's bookkeeping intact.
    }
  }
}
