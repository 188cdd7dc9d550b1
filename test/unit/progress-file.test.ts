/** runtime/progress-file.ts: a progress line over 64 KiB is dropped whole, wherever the reads cut it. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ProgressFollower } from '../../src/runtime/progress-file.js';
import type { Progress } from '../../src/runtime/port.js';

describe('ProgressFollower', () => {
  it('drops a line over 64 KiB that completes in the read after a carry just under the limit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'progress-'));
    try {
      const path = join(dir, 'progress.jsonl');
      const long = JSON.stringify({ progress: 0.9, message: 'x'.repeat(70_000) });
      await writeFile(path, `{"progress": 0.1}\n${long}\n{"progress": 0.5}\n`);
      const seen: Progress[] = [];
      const follower = new ProgressFollower(path, (p) => seen.push(p));
      await follower.finish();
      assert.deepEqual(seen.map((p) => p.progress), [0.1, 0.5]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
