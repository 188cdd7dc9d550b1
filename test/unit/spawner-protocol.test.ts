/**
 * The spawner's wire format and its launcher, below the runtime: frames survive any chunking, a queued
 * launch can be withdrawn, `release` stops a drain that a daemon holds open, and a server that stops
 * reading makes the spawner pause its tasks instead of buffering their output.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LaunchStart } from '../../src/runtime/launcher.js';
import { SpawnerLauncher } from '../../src/runtime/spawner-client.js';
import { encodeFrame, FrameReader, type SpawnerEvent } from '../../src/runtime/spawner/frames.mjs';

const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
const noOutput = () => {};
let dir: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'spawner-protocol-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('spawner frames', () => {
  it('decode to the same headers and bytes however the stream is cut', () => {
    const big = Buffer.alloc(3 * 65536 + 7, 0xab);
    const events: Array<[SpawnerEvent, Buffer | null]> = [
      [{ t: 'started', id: 1, pid: 42 }, null],
      [{ t: 'output', id: 1, stream: 'stdout' }, big],
      [{ t: 'error', id: 2, code: 'ENOENT', message: 'naïve ✓ — not found' }, null],
      [{ t: 'output', id: 1, stream: 'stderr' }, Buffer.from([0, 255, 10])],
      [{ t: 'exit', id: 1, code: null, signal: 'SIGTERM' }, null],
    ];
    const wire = Buffer.concat(events.map(([header, data]) => encodeFrame(header, data ? [data.subarray(0, 5), data.subarray(5)] : [])));
    for (const cut of [1, 3, 8, 13, 4096, 65536, wire.length]) {
      const reader = new FrameReader<SpawnerEvent>();
      const seen: Array<[SpawnerEvent, Buffer | null]> = [];
      for (let at = 0; at < wire.length; at += cut) reader.push(wire.subarray(at, at + cut), (header, data) => seen.push([header, data && Buffer.from(data)]));
      assert.deepEqual(seen, events, `chunks of ${cut} bytes`);
    }
  });
});

describe('spawner launcher', () => {
  let launcher: SpawnerLauncher;
  before(() => void (launcher = new SpawnerLauncher()));
  after(() => launcher.close());

  it('withdraws a launch still in its queue: that process never starts', async () => {
    for (let round = 0; round < 2; round += 1) { // a spawner starting up, then a warm one
      const marker = join(dir, `never-${round}`);
      const first = launcher.launch({ argv: ['true'], cwd: dir, env }, noOutput);
      const second = launcher.launch({ argv: ['touch', marker], cwd: dir, env }, noOutput);
      second.withdraw();
      assert.deepEqual(await second.started, { withdrawn: true } satisfies LaunchStart);
      const started = await first.started;
      assert.ok('pid' in started);
      assert.deepEqual(await first.exited, { code: 0, signal: null });
      first.release();
      assert.throws(() => readFileSync(marker), /ENOENT/);
    }
  });

  it('reports spawn errors by errno: a missing program, a missing cwd, a file without the x bit', async () => {
    await writeFile(join(dir, 'plain.sh'), 'echo never\n', { mode: 0o644 });
    const cases = [[['no-such-program-xyz'], dir, 'ENOENT'], [['true'], join(dir, 'gone'), 'ENOENT'], [['./plain.sh'], dir, 'EACCES']] as const;
    for (const [argv, cwd, errno] of cases) {
      const started = await launcher.launch({ argv: [...argv], cwd, env }, noOutput).started;
      assert.equal('errno' in started && started.errno, errno, argv.join(' '));
    }
  });

  it('release() ends a drain that an escaped daemon holds open; no more output comes', async () => {
    let output = '';
    const task = launcher.launch({ argv: ['sh', '-c', 'sleep 1000 & echo "pid $!"'], cwd: dir, env }, (chunk) => (output += chunk));
    const started = await task.started;
    assert.ok('pid' in started);
    assert.deepEqual(await task.exited, { code: 0, signal: null });
    const state = await Promise.race([task.drained.then(() => 'drained'), new Promise((r) => setTimeout(r, 200, 'open'))]);
    assert.equal(state, 'open', 'the background sleep holds stdout open');
    task.release();
    await task.drained;
    process.kill(-started.pid, 'SIGKILL');
    assert.match(output, /^pid \d+\n$/);
  });

  it('pauses tasks while the server is not reading, rather than buffering their output', async () => {
    let bytes = 0;
    let stalled = false;
    const task = launcher.launch({ argv: ['head', '-c', String(256 * 1024 * 1024), '/dev/zero'], cwd: dir, env }, (chunk) => {
      bytes += chunk.length;
      if (!stalled) {
        stalled = true; // a server busy for 500 ms, while the task could write GBs
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 500);
      }
    });
    assert.ok('pid' in (await task.started));
    assert.deepEqual(await task.exited, { code: 0, signal: null });
    await task.drained;
    assert.equal(bytes, 256 * 1024 * 1024, 'every byte arrived');
    const peakKb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${launcher.pid}/status`, 'utf8'))![1]);
    assert.ok(peakKb < 128 * 1024, `the spawner's peak RSS stayed small: ${peakKb} kB`);
  });
});
