/**
 * The `process` runtime through its spawner process (src/runtime/spawner/) and, for parity, inline: output
 * volume and order, exit codes and signals, spawn errors, and what happens when the spawner dies, when the
 * server dies, and on close. Tasks are `node -e` scripts and /bin/sh, so nothing beyond Node is needed.
 * Ordering is proven with handshakes and pids read back from output, never with timing.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { defaultManifest } from '../../src/core/manifest.js';
import type { AttemptInput, AttemptOutcome, Prepared } from '../../src/runtime/port.js';
import { STDOUT_TAIL_BYTES } from '../../src/runtime/port.js';
import { ProcessRuntime } from '../../src/runtime/process-runtime.js';
import type { SpawnerLauncher } from '../../src/runtime/spawner-client.js';
import { alive } from '../helpers/processes.js';

const NODE = process.execPath;
const ROOT = join(import.meta.dirname, '..', '..');
let scratch: string;

/** A runtime whose revision is written straight into place (no tarball): noexec.sh, a folder, a script. */
async function runtimeFor(mode: 'process' | 'inline'): Promise<{ runtime: ProcessRuntime; prepared: Prepared }> {
  const runtime = new ProcessRuntime({
    spawner: mode, killGraceMs: 300, drainMs: 300, progressPollMs: 20,
    unpack: async (_tarball, dest) => {
      await mkdir(join(dest, 'a-folder'), { recursive: true });
      await writeFile(join(dest, 'noexec.sh'), 'echo never\n');
      await writeFile(join(dest, 'run.sh'), '#!/bin/sh\necho "ran $1"\n');
      await chmod(join(dest, 'run.sh'), 0o755);
    },
  });
  const prepared = await runtime.prepare({
    projectId: 'prj_1', contentHash: `sha256:${createHash('sha256').update(mode).digest('hex')}`, tarballPath: '/none',
    manifest: defaultManifest(null), workDir: join(scratch, mode), onPhase: () => {}, onLog: () => {}, signal: new AbortController().signal,
  });
  return { runtime, prepared };
}

interface Seen { stdout: Buffer[]; stderr: Buffer[]; text: string; started: boolean }

function run(runtime: ProcessRuntime, prepared: Prepared, runnerCommand: string[], extra: Partial<AttemptInput> = {}) {
  const seen: Seen = { stdout: [], stderr: [], text: '', started: false };
  const attempt = runtime.run({
    prepared, runnerCommand, payload: {}, env: {}, timeoutS: 60, checkpointDir: null,
    ids: { jobId: 'job_1', taskId: 'tsk_1', taskIndex: 0, taskCount: 1, attempt: 1, project: 'demo', contentHash: prepared.contentHash },
    onOutput: (chunk, stream) => {
      seen[stream].push(Buffer.from(chunk));
      seen.text += chunk.toString();
    },
    onProgress: () => {},
    onStart: () => void (seen.started = true),
    ...extra,
  });
  return { attempt, seen, outcome: attempt.outcome as Promise<AttemptOutcome> };
}

async function until(condition: () => boolean, ms = 3_000): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(10)) if (condition()) return true;
  return condition();
}

const pidsIn = (text: string) => [...text.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
const spawnerPid = (runtime: ProcessRuntime) => (runtime.launcher as SpawnerLauncher).pid;

before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'spawner-test-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

for (const mode of ['process', 'inline'] as const) {
  describe(`process runtime (${mode} spawn): output, exits, spawn errors`, () => {
    let runtime: ProcessRuntime;
    let prepared: Prepared;
    before(async () => ({ runtime, prepared } = await runtimeFor(mode)));
    after(() => runtime.close());

    it('delivers 5 MB of stdout byte for byte and in order, stderr in order beside it; the tail is stdout only', async () => {
      // 5 MB of numbered lines plus every byte value, with a stderr line after each 64 KiB of stdout.
      const script = `const out = []; let size = 0, n = 0;
        while (size < 5 * 1024 * 1024) { const line = String(n++).padStart(9, '0') + '\\n'; out.push(line); size += line.length;
          if (size % 65536 < 10) { process.stdout.write(out.splice(0).join('')); process.stderr.write('err ' + n + '\\n'); } }
        process.stdout.write(out.join('')); process.stdout.write(Buffer.from(Array.from({ length: 256 }, (_, i) => i)));`;
      const { seen, outcome } = run(runtime, prepared, [NODE, '-e', script]);
      const done = await outcome;
      assert.equal(done.exitCode, 0);
      const stdout = Buffer.concat(seen.stdout);
      const lines = stdout.subarray(0, stdout.length - 256).toString().split('\n').slice(0, -1);
      assert.ok(lines.length * 10 >= 5 * 1024 * 1024);
      lines.forEach((line, i) => i % 50_000 === 0 && assert.equal(line, String(i).padStart(9, '0')));
      assert.equal(lines.every((line, i) => Number(line) === i), true, 'every stdout line once, in order');
      assert.deepEqual([...stdout.subarray(-256)], Array.from({ length: 256 }, (_, i) => i), 'binary bytes arrive unchanged');
      const errs = Buffer.concat(seen.stderr).toString().split('\n').slice(0, -1).map((line) => Number(line.slice(4)));
      assert.ok(errs.length > 50);
      assert.deepEqual(errs, [...errs].sort((a, b) => a - b), 'stderr lines in order');
      assert.equal(done.stdoutTail, stdout.subarray(-STDOUT_TAIL_BYTES).toString('utf8'), 'the tail is the end of stdout, stdout only');
    });

    it('reports exit codes and the signal that ended the leader', async () => {
      for (const [command, exitCode, signal] of [
        [['true'], 0, null], [['sh', '-c', 'exit 3'], 3, null], [['sh', '-c', 'exit 255'], 255, null],
        [['sh', '-c', 'kill -TERM $$'], null, 'SIGTERM'], [['sh', '-c', 'kill -KILL $$'], null, 'SIGKILL'],
        [['./run.sh', 'x'], 0, null],
      ] as const) {
        const done = await run(runtime, prepared, [...command]).outcome;
        assert.deepEqual([done.exitCode, done.signal, done.error], [exitCode, signal, undefined], command.join(' '));
      }
    });

    it('a command that cannot start is runner_not_found / runner_not_executable and never starts', async () => {
      for (const [command, code] of [
        ['no-such-runner-xyz', 'runner_not_found'], ['./missing.sh', 'runner_not_found'],
        ['./noexec.sh', 'runner_not_executable'], ['./a-folder', 'runner_not_executable'],
      ] as const) {
        const { seen, outcome } = run(runtime, prepared, [command]);
        const done = await outcome;
        assert.equal(done.error?.code, code, command);
        assert.equal(done.exitCode, null);
        assert.equal(seen.started, false);
        assert.ok(done.error.message.includes(command) && done.error.message.includes(prepared.workdir), done.error.message);
      }
    });
  });
}

describe('the spawner process', () => {
  let runtime: ProcessRuntime;
  let prepared: Prepared;
  before(async () => ({ runtime, prepared } = await runtimeFor('process')));
  after(() => runtime.close());

  it('dying mid-attempt fails the running attempts (runner_spawn_failed), kills their groups; the next attempt restarts it', async () => {
    const tree = ['sh', '-c', 'sleep 1000 & echo "pid $!"; echo "pid $$"; wait'];
    const attempts = [run(runtime, prepared, tree), run(runtime, prepared, tree)];
    assert.ok(await until(() => attempts.every(({ seen }) => pidsIn(seen.text).length === 2)), 'both tasks are up');
    const first = spawnerPid(runtime)!;
    process.kill(first, 'SIGKILL');
    for (const { seen, outcome } of attempts) {
      const done = await outcome;
      assert.equal(done.exitCode, null);
      assert.equal(done.error?.code, 'runner_spawn_failed');
      assert.match(done.error.message, /spawner process \(pid \d+\).* died \(SIGKILL\)/);
      assert.equal(seen.started, true);
      const pids = pidsIn(seen.text);
      assert.ok(await until(() => pids.every((pid) => !alive(pid))), `task processes ${pids} are gone`);
    }
    const next = await run(runtime, prepared, ['sh', '-c', 'echo again']).outcome;
    assert.equal(next.exitCode, 0);
    assert.equal(next.stdoutTail, 'again\n');
    assert.notEqual(spawnerPid(runtime), first);
  });

  it('gives tasks no descriptor beyond stdin/stdout/stderr that reaches the spawner (its channel is close-on-exec)', async () => {
    const { seen, outcome } = run(runtime, prepared, ['sh', '-c', 'for f in /proc/$$/fd/*; do echo "$f $(readlink $f)"; done']);
    assert.equal((await outcome).exitCode, 0);
    const spawnerFds = new Set(readdirSync(`/proc/${spawnerPid(runtime)}/fd`).map((fd) => readlinkSync(`/proc/${spawnerPid(runtime)}/fd/${fd}`)));
    const leaked = seen.text.split('\n').map((line) => line.split(' ')).filter(([path, target]) => Number(path!.split('/').pop()) > 2 && target?.startsWith('socket:') && spawnerFds.has(target));
    assert.deepEqual(leaked, []);
  });

  it('reaps what it spawns: no zombie children after many attempts; close() ends it', async () => {
    await Promise.all(Array.from({ length: 40 }, () => run(runtime, prepared, ['sh', '-c', 'exit 0']).outcome));
    const pid = spawnerPid(runtime)!;
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    assert.equal(children, '', 'no child of the spawner is left, zombie or not');
    await runtime.close();
    assert.equal(alive(pid), false);
  });

  for (const mode of ['process', 'helper'] as const) it(`exits when the server dies, and SIGKILLs the tasks still running (spawner: ${mode})`, async () => {
    // A throwaway "server": runs one long task, prints the spawner's and the task's pids, waits to be killed.
    const script = join(scratch, `server-${mode}.mts`);
    await writeFile(script, `
      import { mkdir } from 'node:fs/promises';
      import { defaultManifest } from '${ROOT}/src/core/manifest.ts';
      import { ProcessRuntime } from '${ROOT}/src/runtime/process-runtime.ts';
      const runtime = new ProcessRuntime({ spawner: '${mode}', helperDir: '${join(scratch, 'helper')}', unpack: (_t, dest) => mkdir(dest, { recursive: true }).then(() => {}) });
      const prepared = await runtime.prepare({ projectId: 'p', contentHash: 'sha256:${'a'.repeat(64)}', tarballPath: '/none',
        manifest: defaultManifest(null), workDir: '${join(scratch, `server-${mode}`)}', onPhase() {}, onLog() {}, signal: new AbortController().signal });
      runtime.run({ prepared, runnerCommand: ['sh', '-c', 'echo "pid $$"; exec sleep 1000'], payload: {}, env: {}, timeoutS: 0, checkpointDir: null,
        ids: { jobId: 'j', taskId: 't', taskIndex: 0, taskCount: 1, attempt: 1, project: 'p', contentHash: prepared.contentHash },
        onOutput: (chunk) => console.log(String(chunk).trim(), 'spawner', runtime.launcher.pid), onProgress() {}, onStart() {} });
      setInterval(() => {}, 1000);
    `);
    const server = spawn(NODE, ['--import', 'tsx', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      let out = '';
      server.stdout.on('data', (chunk) => (out += chunk));
      assert.ok(await until(() => /spawner \d+/.test(out), 20_000), `the server ran its task: ${out}`);
      const [, task, spawner] = /pid (\d+) spawner (\d+)/.exec(out)!.map(Number);
      assert.ok(alive(task!) && alive(spawner!));
      server.kill('SIGKILL');
      assert.ok(await until(() => !alive(spawner!)), 'the spawner exited with its server');
      assert.ok(await until(() => !alive(task!)), 'the task was killed with it');
    } finally {
      server.kill('SIGKILL'); // a failed check must not leave the throwaway server holding the test run open
    }
  });
});
