/**
 * The in-sandbox helper (src/runtime/oci/helper/computalot-helper.c) and the worker's end of its protocol
 * (helper-channel.ts), run directly on the host: no container needed, so the protocol is tested apart from
 * podman and gVisor.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { helperBinary } from '../../src/runtime/oci/helper-binary.js';
import { encodeSpec, HelperChannel, type ProcessHandlers } from '../../src/runtime/oci/helper-channel.js';
import { alive, cgroupMount, cgroupOf, cgroupSkip } from '../helpers/processes.js';

interface Ran {
  started: number | null;
  errno: number | null;
  stdout: string;
  stderr: string;
  exit: { code: number | null; signal: number | null } | null;
  /** The leader's exit (X) and the stdout received by then. */
  leaderExit: { code: number | null; signal: number | null } | null;
  stdoutAtLeaderExit: string | null;
  lost: string | null;
}

/** A shell that leaves its session and is orphaned (setsid in a child that exits), printing its pid. */
const ESCAPE = 'python3 -c \'import os\nif os.fork() == 0:\n  os.setsid()\n  if os.fork() == 0: os.execvp("sh", ["sh", "-c", "echo pid $$; exec sleep 1003"])\n  os._exit(0)\nos.wait()\'';

/** The helper's cgroup folders (task-cgroup.h): `<cgroup2 mount><its own cgroup>/computalot-helper-<pid>`. */
function helperCgroup(pid: number): string {
  return join(cgroupMount()!, cgroupOf(pid), `computalot-helper-${pid}`);
}

// Both ways of keeping a task's tree: an anchor per task (sandboxes; the default without --cgroups) and a
// cgroup per task (--cgroups: the process runtime on a host with a writable cgroup2).
for (const mode of ['anchor', 'cgroup'] as const) describe(`the sandbox helper and its channel (${mode} per task)`, { skip: mode === 'cgroup' && cgroupSkip() }, () => {
  let dir: string;
  let bin: string;
  let channel: HelperChannel;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'computalot-helper-'));
    bin = await helperBinary(dir);
    channel = await HelperChannel.start(bin, mode === 'cgroup' ? ['--cgroups'] : []);
  });
  after(async () => {
    channel?.close();
    await channel?.ended;
    await rm(dir, { recursive: true, force: true });
  });

  async function spec(argv: string[], opts: { cwd?: string; env?: Record<string, string>; mem?: number; nproc?: number } = {}): Promise<Buffer> {
    return encodeSpec({ argv, cwd: opts.cwd ?? dir, env: opts.env ?? {}, memoryBytes: opts.mem ?? null, nproc: opts.nproc ?? null });
  }

  function start(id: string, path: Buffer, onStart?: (pid: number) => void, onStdout?: (stdout: string) => void): Promise<Ran> {
    return new Promise((resolve) => {
      const ran: Ran = { started: null, errno: null, stdout: '', stderr: '', exit: null, leaderExit: null, stdoutAtLeaderExit: null, lost: null };
      const handlers: ProcessHandlers = {
        onLeaderExit: (exit) => { ran.leaderExit = exit; ran.stdoutAtLeaderExit = ran.stdout; },
        onStart: (pid) => { ran.started = pid; onStart?.(pid); },
        onError: (errno) => { ran.errno = errno; resolve(ran); },
        onOutput: (chunk, stream) => {
          ran[stream] += chunk.toString();
          if (stream === 'stdout') onStdout?.(ran.stdout);
        },
        onExit: (exit) => { ran.exit = exit; resolve(ran); },
        onLost: (reason) => { ran.lost = reason; resolve(ran); },
      };
      channel.run(id, path, handlers);
    });
  }

  it(`says on READY that it keeps trees with ${mode === 'cgroup' ? 'a cgroup' : 'an anchor'} per task`, () => {
    assert.equal(channel.treeMode, mode);
  });

  it('searches the task\'s own PATH for its program, and a task\'s env never reaches the next task', async () => {
    const tools = join(dir, 'tools');
    await mkdir(tools);
    await writeFile(join(tools, 'my-tool'), '#!/bin/sh\necho "tool $SECRET_X"\n', { mode: 0o755 });
    const found = await start('p1', await spec(['my-tool'], { env: { PATH: `${tools}:/usr/bin:/bin`, SECRET_X: 'one' } }));
    assert.equal(found.stdout, 'tool one\n', JSON.stringify({ errno: found.errno, stderr: found.stderr }));
    // The task's side of the fork shares the helper's memory until its exec: nothing of its env may stay.
    const next = await start('p2', await spec(['sh', '-c', 'echo "[$SECRET_X]"; command -v my-tool || echo none']));
    assert.equal(next.stdout, '[]\nnone\n');
  });

  it('runs a command in its cwd with the env overlay; output on both streams comes before the exit', async () => {
    const ran = await start('a1', await spec(['sh', '-c', 'echo "out $FOO $(pwd)"; echo err >&2; exit 3'], { cwd: '/tmp', env: { FOO: 'bar' } }));
    assert.ok(ran.started && ran.started > 0);
    assert.equal(ran.stdout, 'out bar /tmp\n');
    assert.equal(ran.stderr, 'err\n');
    assert.deepEqual(ran.exit, { code: 3, signal: null });
  });

  it('reports a missing program as ENOENT without starting it', async () => {
    const ran = await start('a2', await spec(['definitely-not-a-program-xyz']));
    assert.equal(ran.errno, 2);
    assert.equal(ran.started, null);
    assert.equal(ran.exit, null);
  });

  it('carries binary output byte for byte, in large amounts', async () => {
    const ran = await start('a3', await spec(['sh', '-c', 'head -c 3000000 /dev/zero | tr "\\0" "x"']));
    assert.equal(ran.stdout.length, 3_000_000);
    assert.deepEqual(ran.exit, { code: 0, signal: null });
  });

  it('K signals the whole process group', async () => {
    let pid = 0;
    const done = start('a4', await spec(['sh', '-c', 'sleep 100 & echo $!; wait']), (p) => { pid = p; });
    await new Promise((r) => setTimeout(r, 300));
    channel.kill('a4', 15);
    const ran = await done;
    assert.ok(pid > 0);
    const child = Number(ran.stdout.trim());
    assert.equal(ran.exit?.signal, 15);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(child), false, 'the background child got the signal too');
  });

  it('a leader that exits leaves nothing behind: the rest of its group is killed and the exit is reported at once', async () => {
    const t0 = Date.now();
    const ran = await start('a5', await spec(['sh', '-c', 'sleep 100 & echo $!']));
    assert.deepEqual(ran.exit, { code: 0, signal: null });
    assert.ok(Date.now() - t0 < 1_500, 'not held open by the orphan');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(alive(Number(ran.stdout.trim())), false);
  });

  /** The pids named by `pid N` lines that are still alive after a moment; SIGKILLed, so no test leaves them. */
  async function survivors(out: string): Promise<number[]> {
    const pids = [...out.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
    for (const until = Date.now() + 2_000; pids.some(alive) && Date.now() < until;) await new Promise((r) => setTimeout(r, 10));
    const left = pids.filter(alive);
    for (const pid of left) process.kill(pid, 'SIGKILL');
    return left;
  }

  it('K reaches a descendant that left the session and was orphaned (setsid, double fork)', async () => {
    let killed = false;
    const ran = await start('e1', await spec(['sh', '-c', `${ESCAPE}; sleep 100`]), undefined, (stdout) => {
      if (!killed && /pid \d+/.test(stdout)) { killed = true; channel.kill('e1', 15); }
    });
    assert.equal(ran.exit?.signal, 15);
    assert.match(ran.stdout, /pid \d+/);
    assert.deepEqual(await survivors(ran.stdout), [], 'the escaped sleep got the SIGTERM too');
  });

  it('a leader that exits takes descendants that left its session with it: X at once, the final exit once they are gone', async () => {
    const ran = await start('e2', await spec(['sh', '-c', `${ESCAPE}; exit 4`]));
    assert.deepEqual(ran.leaderExit, { code: 4, signal: null });
    assert.deepEqual(ran.exit, { code: 4, signal: null });
    assert.deepEqual(await survivors(ran.stdout), [], 'the escaped sleep outlived its task');
  });

  it('after K 15 the tree outlives its leader until K 9: a SIGTERM handler finishes its cleanup', async () => {
    // The child's pid line is the handshake that its trap is set.
    let killed = false;
    const ran = await start('g1', await spec(['sh', '-c', 'sh -c \'trap "sleep 0.3; echo cleaned; exit 0" TERM; echo "pid $$"; while :; do sleep 0.05; done\' & wait']), undefined, (stdout) => {
      if (!killed && /pid \d+/.test(stdout)) { killed = true; channel.kill('g1', 15); }
    });
    assert.equal(ran.leaderExit?.signal, 15, 'the leader died of the SIGTERM');
    assert.equal(ran.stdoutAtLeaderExit?.includes('cleaned'), false, 'X came when the leader died, before the cleanup');
    assert.match(ran.stdout, /cleaned/, 'the child was not SIGKILLed with its leader');
    assert.deepEqual(await survivors(ran.stdout), []);
  });

  it('tasks after a SIGKILLed tree start and run as usual', async () => {
    // A cgroup that had cgroup.kill written kills every process later born in it (Linux 6.18): the
    // helper must never hand it to another task.
    let killed = false;
    const first = await start('k1', await spec(['sh', '-c', 'sleep 100 & echo "pid $!"; wait']), undefined, (stdout) => {
      if (!killed && /pid \d+/.test(stdout)) { killed = true; channel.kill('k1', 9); }
    });
    assert.equal(first.exit?.signal, 9);
    for (let i = 0; i < 5; i += 1) {
      const next = await start(`k${i + 2}`, await spec(['sh', '-c', `echo ${i}`]));
      assert.deepEqual([next.exit, next.stdout], [{ code: 0, signal: null }, `${i}\n`], `task ${i + 1} after the kill`);
    }
  });

  it('a task that signals its parent (kill -TERM $PPID, HUP, USR1, INT) does not end the helper or other tasks', async () => {
    let otherPid = 0;
    const other = start('pp0', await spec(['sh', '-c', 'echo "pid $$"; sleep 100']), (pid) => { otherPid = pid; });
    // At once, as the first thing the task does: an anchor that had not yet reported the leader's pid
    // once died of it (seen in CI), so each signal goes several times.
    for (let round = 0; round < 5; round += 1) {
      for (const sig of ['TERM', 'HUP', 'USR1', 'INT']) {
        const ran = await start(`pp-${sig}-${round}`, await spec(['sh', '-c', `kill -${sig} $PPID; sleep 0.05; echo alive`]));
        assert.deepEqual([ran.exit, ran.stdout], [{ code: 0, signal: null }, 'alive\n'], `after kill -${sig} $PPID`);
      }
    }
    assert.equal(channel.alive, true);
    assert.ok(otherPid > 0 && alive(otherPid), 'the other task still runs');
    channel.kill('pp0', 9);
    assert.equal((await other).exit?.signal, 9);
  });

  if (mode === 'cgroup') it('a task that writes its own cgroup.kill, or makes sub-cgroups, spoils nothing for later tasks', async () => {
    const own = `cg="${cgroupMount()!}$(sed -n "s/^0:://p" /proc/self/cgroup)"`;
    // Alone: the task is dead by the time the helper reaps it, so the helper never sees a tree to kill.
    const selfKill = await start('sk1', await spec(['sh', '-c', `${own}; echo 1 > "$cg/cgroup.kill"; sleep 5`]));
    assert.equal(selfKill.exit?.signal, 9);
    // A child in a sub-cgroup the task made: K 15 reaches it there too (its trap answers).
    let killed = false;
    const nested = await start('sk2', await spec(['sh', '-c', `${own}; mkdir "$cg/sub"; sh -c 'echo $$ > "$0/sub/cgroup.procs"; trap "echo sub-term; exit 0" TERM; echo "pid $$"; while :; do sleep 0.05; done' "$cg" & wait`]), undefined, (stdout) => {
      if (!killed && /pid \d+/.test(stdout)) { killed = true; channel.kill('sk2', 15); }
    });
    assert.match(nested.stdout, /sub-term/, 'the process in the sub-cgroup got the SIGTERM');
    for (let i = 0; i < 5; i += 1) {
      const next = await start(`sk${i + 3}`, await spec(['sh', '-c', `echo ${i}`]));
      assert.deepEqual([next.exit, next.stdout], [{ code: 0, signal: null }, `${i}\n`], `task ${i + 1} after the self-kill and the sub-cgroup`);
    }
  });

  it('applies the memory and process limits to the process tree', async () => {
    const mem = await start('a6', await spec(['python3', '-c', 'b = bytearray(512 * 1024 * 1024)'], { mem: 128 * 1024 * 1024 }));
    assert.notEqual(mem.exit?.code, 0);
    assert.match(mem.stderr, /MemoryError/);
  });

  it('takes a large spec (a big environment) split across many reads', async () => {
    // Four variables of 50 kB: one string may not pass 128 KiB (MAX_ARG_STRLEN), the spec passes 64 KiB reads.
    const env = Object.fromEntries([1, 2, 3, 4].map((i) => [`BIG${i}`, String(i).repeat(50_000)]));
    const ran = await start('b1', await spec(['sh', '-c', 'echo $((${#BIG1} + ${#BIG2} + ${#BIG3} + ${#BIG4}))'], { env }));
    assert.equal(ran.stdout, '200000\n', JSON.stringify({ errno: ran.errno, stderr: ran.stderr }));
  });

  it('runs many processes at once, each with its own outcome', async () => {
    const runs = await Promise.all(Array.from({ length: 20 }, async (_, i) => start(`m${i}`, await spec(['sh', '-c', `echo ${i}; exit ${i % 4}`]))));
    runs.forEach((ran, i) => {
      assert.equal(ran.stdout, `${i}\n`);
      assert.equal(ran.exit?.code, i % 4);
    });
  });

  if (mode === 'cgroup') it('removes its cgroup folders when it exits; a helper that died leaves its tree to the next helper, which ends it', async () => {
    const first = await HelperChannel.start(bin, ['--cgroups']);
    const folder = helperCgroup(first.pid!);
    assert.equal(existsSync(folder), true);
    // A daemon that left its task's session, then the helper SIGKILLed: nothing can end the daemon but the
    // cgroup it still sits in.
    const escaped = await new Promise<number>((resolve) => {
      let out = '';
      first.run('d1', encodeSpec({ argv: ['sh', '-c', `${ESCAPE}; sleep 100`], cwd: dir, env: {} }), {
        onStart: () => undefined, onError: () => resolve(0), onExit: () => undefined, onLost: () => undefined,
        onOutput: (chunk) => { out += chunk.toString(); const m = /pid (\d+)/.exec(out); if (m) resolve(Number(m[1])); },
      });
    });
    assert.ok(escaped > 0 && alive(escaped));
    first.destroy();
    await first.ended;
    // Nothing else ends it now (it is no leader: no PDEATHSIG), but a helper another test file starts
    // meanwhile may sweep it first: so no check here that it is still alive.
    const second = await HelperChannel.start(bin, ['--cgroups']);
    const secondFolder = helperCgroup(second.pid!);
    try {
      for (const until = Date.now() + 2_000; alive(escaped) && Date.now() < until;) await new Promise((r) => setTimeout(r, 10));
      assert.equal(alive(escaped), false, 'the next helper ended what the dead one left');
      assert.equal(existsSync(folder), false, 'and removed its folder');
    } finally {
      if (alive(escaped)) process.kill(escaped, 'SIGKILL');
      second.close();
      await second.ended;
    }
    assert.equal(existsSync(secondFolder), false, 'a helper that exits removes its own folder');
  });
});
