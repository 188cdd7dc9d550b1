/**
 * The `process` runtime with real processes and real files: a revision tarball made by GNU tar holds
 * python3 and /bin/sh runners; each test runs attempts through the Runtime port and checks what a task saw
 * (env, payload, cwd) and what the worker got back (output, progress, result, outcome), and that the
 * process tree and the scratch files are gone afterwards. Ordering and liveness are proven with
 * handshakes (the task waits for a file the test creates from a callback), never with timing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { defaultManifest } from '../../src/core/manifest.js';
import { extractTarball } from '../../src/tarball/extract.js';
import type { AttemptInput, AttemptOutcome, Prepared, Progress } from '../../src/runtime/port.js';
import { RESULT_LIMIT_BYTES, RuntimeError } from '../../src/runtime/port.js';
import { ProcessRuntime } from '../../src/runtime/process-runtime.js';
import { cleanupArchives, gnuTar, makeTree, toolSkip } from '../helpers/archives.js';
import { alive, cgroupSkip } from '../helpers/processes.js';
import type { HelperLauncher } from '../../src/runtime/helper-launcher.js';

const skip = toolSkip('tar', 'python3');

const SCRIPTS = {
  'env_dump.py': `import json, os
with open(os.environ["COMPUTALOT_TASK_PAYLOAD"]) as f:
    payload = json.load(f)
out = {"env": dict(os.environ), "payload": payload, "cwd": os.getcwd(),
       "scratch": os.listdir(os.environ["COMPUTALOT_SCRATCH_DIR"]), "has_lib": os.path.exists("lib/data.txt")}
with open(os.environ["COMPUTALOT_RESULT_PATH"], "w") as f:
    json.dump(out, f)
`,
  'big_result.py': `import os
with open(os.environ["COMPUTALOT_RESULT_PATH"], "w") as f:
    f.write('"' + "x" * (10 * 1024 * 1024) + '"')
`,
  'interleave.sh': `echo out-1
while [ ! -e "$COMPUTALOT_CHECKPOINT_DIR/go1" ]; do sleep 0.01; done
echo err-1 >&2
while [ ! -e "$COMPUTALOT_CHECKPOINT_DIR/go2" ]; do sleep 0.01; done
echo out-2
echo '{"from": "stderr"}' >&2
`,
  'progress.sh': `echo '{"progress": 0.1}' >> "$COMPUTALOT_PROGRESS_PATH"
while [ ! -e "$COMPUTALOT_CHECKPOINT_DIR/go" ]; do sleep 0.01; done
printf '%s\\n' 'garbage' '{"progress": 2}' '[1]' '{"progress": 0.5, "message": "half"}' >> "$COMPUTALOT_PROGRESS_PATH"
printf '{"progress": 1}' >> "$COMPUTALOT_PROGRESS_PATH"
`,
  'tree.sh': `sleep 1000 &
echo "pid $!"
sleep 1000 &
echo "pid $!"
echo "pid $$"
wait
`,
  'stubborn.sh': `sh -c 'trap "" TERM; echo "pid $$"; while :; do sleep 0.05; done' &
wait
`,
  // A descendant that leaves the task's session and is orphaned (setsid, double fork), like a daemon; the
  // leader waits until it runs, then exits (argv "exit") or sleeps.
  'escape.py': `import os, sys, time
up = os.path.join(os.environ["COMPUTALOT_SCRATCH_DIR"], "up")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sh", ["sh", "-c", 'echo "pid $$"; touch "$0"; exec sleep 1003', up])
    os._exit(0)
while not os.path.exists(up):
    time.sleep(0.01)
if sys.argv[1] == "exit":
    sys.exit(0)
time.sleep(1000)
`,
  // A child in the task's group that cleans up on SIGTERM (slowly), while the leader dies at once.
  'cleanup.sh': `sh -c 'trap "sleep 0.5; echo cleaned > \"$MARKER\"; exit 0" TERM; echo "pid $$"; while :; do sleep 0.05; done' &
wait
`,
  'checkpoint.sh': `cat "$COMPUTALOT_CHECKPOINT_DIR/prev.txt"
echo written-by-task > "$COMPUTALOT_CHECKPOINT_DIR/new.txt"
echo "$COMPUTALOT_SCRATCH_DIR"
echo data > "$COMPUTALOT_SCRATCH_DIR/tmp.bin"
`,
  'noexec.sh': 'echo never\n',
  'lib/data.txt': 'revision data\n',
};

const SECRETS = { DATABASE_URL: 'postgres://u:p@db/prod', COMPUTALOT_ADMIN_TOKEN: 'flk_admin_secret', AWS_SECRET_ACCESS_KEY: 'aws' };
const manifest = { ...defaultManifest(null), env: { FROM_MANIFEST: 'm', SHARED: 'manifest' } };
const hashOf = (seed: string) => `sha256:${createHash('sha256').update(seed).digest('hex')}`;

let python = 'python3';
let tarball: string;
let workDir: string;
let scratch: string;
let runtime: ProcessRuntime;
let prepared: Prepared;

function prepareInput(contentHash: string, dir = workDir, tar = tarball, phases: string[] = []) {
  return {
    projectId: 'prj_1', contentHash, tarballPath: tar, manifest, workDir: dir,
    onPhase: (phase: string) => void phases.push(phase), onLog: () => {}, signal: new AbortController().signal,
  };
}

interface Run {
  outcome: AttemptOutcome;
  output: Array<[string, string]>;
  progress: Progress[];
  started: boolean;
}

function startOn(overrides: Partial<AttemptInput> & { runnerCommand: string[] }, rt = runtime) {
  const seen: Omit<Run, 'outcome'> = { output: [], progress: [], started: false };
  const attempt = rt.run({
    prepared, payload: { n: 1 }, env: {}, timeoutS: 60, checkpointDir: null,
    ids: { jobId: 'job_1', taskId: 'tsk_1', taskIndex: 2, taskCount: 5, attempt: 1, project: 'demo', contentHash: prepared.contentHash },
    onOutput: (chunk, stream) => void seen.output.push([stream, chunk.toString()]),
    onProgress: (p) => void seen.progress.push(p),
    onStart: () => void (seen.started = true),
    ...overrides,
  });
  return {
    attempt,
    seen,
    done: async (): Promise<Run> => {
      const outcome = await attempt.outcome;
      return { ...seen, outcome };
    },
  };
}

/**
 * What is left in the attempts folder besides emptied folders kept for reuse (attempt-dir-pool.ts), which
 * must hold exactly a payload.json and an empty scratch/.
 */
async function leftovers(): Promise<string[]> {
  const root = join(workDir, 'attempts');
  const left: string[] = [];
  for (const name of await readdir(root)) {
    if (!name.startsWith('.free-')) {
      left.push(name);
      continue;
    }
    assert.deepEqual((await readdir(join(root, name))).sort(), ['payload.json', 'scratch'], `kept folder ${name}`);
    assert.deepEqual(await readdir(join(root, name, 'scratch')), [], `kept folder ${name}: scratch/ is empty`);
  }
  return left;
}

/** `startOn` the shared runtime; the process-tree cases shadow it with their own runtime per mode. */
const start = startOn;
const text = (run: Pick<Run, 'output'>) => run.output.map(([, chunk]) => chunk).join('');
const pidsIn = (out: string) => [...out.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));

/**
 * The pids `out` names that are still alive once the kernel acted on a SIGKILL sent around the outcome (on
 * a loaded machine that can take a few ms); whatever is left is SIGKILLed, so a failing test leaves nothing.
 */
async function survivors(out: string): Promise<number[]> {
  const pids = pidsIn(out);
  for (const until = Date.now() + 2_000; pids.some(alive) && Date.now() < until;) await new Promise((r) => setTimeout(r, 10));
  const left = pids.filter(alive);
  for (const pid of left) process.kill(pid, 'SIGKILL');
  return left;
}

before(async () => {
  // The interpreter itself: a shim on PATH (pyenv, asdf) adds variables of its own to the env under test.
  if (!skip) python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim();
  const tree = await makeTree({ ...SCRIPTS, 'run.sh': { content: '#!/bin/sh\necho "ran $1"\nexit 3\n', mode: 0o755 } });
  tarball = await gnuTar(tree, { gzip: true });
  scratch = await mkdtemp(join(tmpdir(), 'process-runtime-'));
  workDir = join(scratch, 'worker');
  runtime = new ProcessRuntime({ killGraceMs: 300, drainMs: 300, progressPollMs: 20, hostEnv: { ...process.env, ...SECRETS } });
  prepared = await runtime.prepare(prepareInput(hashOf('main')));
});
after(async () => {
  await runtime?.close();
  await rm(scratch, { recursive: true, force: true });
  await cleanupArchives();
});

describe('process runtime: runner protocol', { skip }, () => {
  it('gives the task the COMPUTALOT_* variables, the payload file, the revision as cwd and layered env', async () => {
    const run = await start({
      runnerCommand: [python, 'env_dump.py'], payload: { items: [1, 2], s: 'é' },
      env: { SHARED: 'job', FROM_JOB: 'j', COMPUTALOT_JOB_ID: 'forged', COMPUTALOT_CHECKPOINT_DIR: '/forged' },
    }).done();
    assert.equal(run.outcome.exitCode, 0);
    assert.equal(run.started, true);
    const seen = JSON.parse(run.outcome.resultFileText!);
    assert.deepEqual(seen.payload, { items: [1, 2], s: 'é' });
    assert.equal(seen.cwd, prepared.workdir);
    assert.equal(seen.has_lib, true);
    assert.deepEqual(seen.scratch, [], 'the scratch folder starts empty');
    const env = seen.env as Record<string, string>;
    assert.equal(env.COMPUTALOT_JOB_ID, 'job_1');
    assert.equal(env.COMPUTALOT_TASK_ID, 'tsk_1');
    assert.equal(env.COMPUTALOT_TASK_INDEX, '2');
    assert.equal(env.COMPUTALOT_TASK_COUNT, '5');
    assert.equal(env.COMPUTALOT_ATTEMPT, '1');
    assert.equal(env.COMPUTALOT_PROJECT, 'demo');
    assert.equal(env.COMPUTALOT_CONTENT_HASH, prepared.contentHash);
    for (const name of ['COMPUTALOT_RESULT_PATH', 'COMPUTALOT_PROGRESS_PATH', 'COMPUTALOT_SCRATCH_DIR', 'COMPUTALOT_TASK_PAYLOAD']) {
      assert.ok(env[name]?.startsWith(workDir), `${name} is a host path inside the worker folder`);
    }
    assert.equal(env.COMPUTALOT_CHECKPOINT_DIR, undefined, 'no checkpoint dir without checkpointing, even if the job sets one');
    assert.equal(env.FROM_MANIFEST, 'm');
    assert.equal(env.FROM_JOB, 'j');
    assert.equal(env.SHARED, 'job', 'the job env wins over the manifest env');
    assert.ok(env.PATH);
  });

  it('never passes server secrets from the host env (DATABASE_URL, COMPUTALOT_ADMIN_TOKEN, …)', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, SECRETS, { LC_ALL: 'C.UTF-8' });
    const fresh = new ProcessRuntime(); // reads process.env itself
    Object.keys(SECRETS).forEach((name) => delete process.env[name]);
    process.env.LC_ALL = saved.LC_ALL;
    if (saved.LC_ALL === undefined) delete process.env.LC_ALL;
    const own = await fresh.prepare(prepareInput(prepared.contentHash));
    const run = await start({ prepared: own, runnerCommand: [python, 'env_dump.py'] }, fresh).done();
    const env = JSON.parse(run.outcome.resultFileText!).env as Record<string, string>;
    for (const name of Object.keys(SECRETS)) assert.equal(env[name], undefined, `${name} leaked into the task`);
    const allowed = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LANGUAGE', 'TZ', 'TMPDIR', 'FROM_MANIFEST', 'SHARED', 'PWD']);
    const extra = Object.keys(env).filter((n) => !allowed.has(n) && !n.startsWith('LC_') && !n.startsWith('COMPUTALOT_'));
    assert.deepEqual(extra, [], 'only allow-listed host variables reach the task');
    assert.equal(env.LC_ALL, 'C.UTF-8');
    await fresh.close();
  });

  it('reads the result file, reports an oversized one by size only, and keeps the stdout tail', async () => {
    const missing = await start({ runnerCommand: ['sh', '-c', 'echo log; echo \'{"r": 1}\''] }).done();
    assert.equal(missing.outcome.resultFileText, null);
    assert.equal(missing.outcome.resultFileBytes, 0);
    assert.equal(missing.outcome.stdoutTail, 'log\n{"r": 1}\n');
    const written = await start({ runnerCommand: ['sh', '-c', 'printf \'{"ok": true}\' > "$COMPUTALOT_RESULT_PATH"'] }).done();
    assert.equal(written.outcome.resultFileText, '{"ok": true}');
    assert.equal(written.outcome.resultFileBytes, 12);
    const big = await start({ runnerCommand: [python, 'big_result.py'] }).done();
    assert.equal(big.outcome.exitCode, 0);
    assert.equal(big.outcome.resultFileText, null);
    assert.ok(big.outcome.resultFileBytes > RESULT_LIMIT_BYTES);
  });

  it('streams stdout and stderr as they come, in order, tagged; the stdout tail holds stdout only', async () => {
    const checkpointDir = join(scratch, 'handshake-output');
    const run = start({
      runnerCommand: ['sh', 'interleave.sh'], checkpointDir, timeoutS: 30,
      onOutput: (chunk, stream) => {
        run.seen.output.push([stream, chunk.toString()]);
        const all = text(run.seen);
        if (all.includes('out-1')) writeFileSync(join(checkpointDir, 'go1'), '');
        if (all.includes('err-1')) writeFileSync(join(checkpointDir, 'go2'), '');
      },
    });
    const done = await run.done();
    assert.equal(done.outcome.timedOut, false, 'every line arrived while the task was still running');
    assert.equal(text(done), 'out-1\nerr-1\nout-2\n{"from": "stderr"}\n');
    assert.deepEqual(done.output.slice(0, 2), [['stdout', 'out-1\n'], ['stderr', 'err-1\n']]);
    assert.equal(done.outcome.stdoutTail, 'out-1\nout-2\n');
  });

  it('reports each valid progress line once, while running and at exit, skipping invalid ones', async () => {
    const checkpointDir = join(scratch, 'handshake-progress');
    const run = start({
      runnerCommand: ['sh', 'progress.sh'], checkpointDir, timeoutS: 30,
      onProgress: (p) => {
        run.seen.progress.push(p);
        writeFileSync(join(checkpointDir, 'go'), '');
      },
    });
    const done = await run.done();
    assert.equal(done.outcome.timedOut, false, 'the first line was delivered while the task ran');
    assert.deepEqual(done.progress, [{ progress: 0.1 }, { progress: 0.5, message: 'half' }, { progress: 1 }]);
  });

  it('returns exit codes and signals; a relative executable runs from the workdir with its args', async () => {
    const three = await start({ runnerCommand: ['./run.sh', 'arg1'] }).done();
    assert.equal(three.outcome.exitCode, 3);
    assert.equal(three.outcome.signal, null);
    assert.equal(text(three), 'ran arg1\n');
    const zero = await start({ runnerCommand: ['true'] }).done();
    assert.equal(zero.outcome.exitCode, 0);
    const signalled = await start({ runnerCommand: ['sh', '-c', 'kill -USR1 $$'] }).done();
    assert.equal(signalled.outcome.exitCode, null);
    assert.equal(signalled.outcome.signal, 'SIGUSR1');
    assert.equal(signalled.outcome.timedOut || signalled.outcome.cancelled, false);
  });
});

// Both ways the helper keeps a tree: a cgroup per task (the default where the host allows it) and an anchor
// process per task (sandboxes, hosts without a writable cgroup2, COMPUTALOT_TASK_CGROUPS=off).
for (const mode of ['cgroup', 'anchor'] as const) describe(`process runtime (${mode} per task): timeout, cancel and the process tree`, { skip: skip || (mode === 'cgroup' && cgroupSkip()) }, () => {
  let rt: ProcessRuntime;
  let own: Prepared;
  before(async () => {
    rt = new ProcessRuntime({ killGraceMs: 300, drainMs: 300, progressPollMs: 20, taskCgroups: mode === 'cgroup' });
    own = await rt.prepare(prepareInput(hashOf('main'), join(scratch, `tree-${mode}`)));
  });
  after(() => rt?.close());
  const start = (overrides: Partial<AttemptInput> & { runnerCommand: string[] }) => startOn({ prepared: own, ...overrides }, rt);

  it(`the helper keeps trees with ${mode === 'cgroup' ? 'a cgroup' : 'an anchor'} per task`, async () => {
    const run = await start({ runnerCommand: ['true'] }).done();
    assert.equal(run.outcome.exitCode, 0);
    assert.equal((rt.launcher as HelperLauncher).treeMode, mode);
  });

  it('a timeout SIGTERMs the whole process group: leader and both background children are gone', async () => {
    const run = await start({ runnerCommand: ['sh', 'tree.sh'], timeoutS: 0.5 }).done();
    assert.equal(run.outcome.timedOut, true);
    assert.equal(run.outcome.cancelled, false);
    assert.equal(run.outcome.signal, 'SIGTERM');
    const pids = pidsIn(text(run));
    assert.equal(pids.length, 3);
    assert.deepEqual(pids.filter(alive), []);
  });

  it('cancel: a grandchild that ignores SIGTERM is SIGKILLed at the grace deadline', async () => {
    const run = start({
      runnerCommand: ['sh', 'stubborn.sh'],
      onOutput: (chunk, stream) => {
        run.seen.output.push([stream, chunk.toString()]);
        if (chunk.toString().includes('pid')) run.attempt.cancel();
      },
    });
    const done = await run.done();
    assert.equal(done.outcome.cancelled, true);
    assert.equal(done.outcome.timedOut, false);
    const [stubborn] = pidsIn(text(done));
    assert.ok(stubborn);
    assert.equal(alive(stubborn), false, 'the SIGTERM-ignoring grandchild was killed');
    run.attempt.cancel(); // a no-op once the attempt has ended
  });

  it('a cancel before the launch means the process never starts', async () => {
    const marker = join(scratch, `never-started-${mode}`);
    // A payload over 64 KiB is written asynchronously: the cancel lands while the attempt is being set up.
    // (A small one is written and launched within run() itself, so the helper gets the task at once; a
    // cancel after that terminates the started process instead.)
    const run = start({ runnerCommand: ['touch', marker], payload: { big: 'x'.repeat(100_000) } });
    run.attempt.cancel();
    const done = await run.done();
    assert.equal(done.outcome.cancelled, true);
    assert.equal(done.started, false);
    assert.equal(done.outcome.exitCode, null);
    assert.equal(existsSync(marker), false);
  });

  it('cancel: a descendant that left the session (setsid, double fork) is gone too', async () => {
    const run = start({
      runnerCommand: [python, 'escape.py', 'sleep'],
      onOutput: (chunk, stream) => {
        run.seen.output.push([stream, chunk.toString()]);
        if (chunk.toString().includes('pid')) run.attempt.cancel();
      },
    });
    const done = await run.done();
    assert.equal(done.outcome.cancelled, true);
    assert.equal(pidsIn(text(done)).length, 1);
    assert.deepEqual(await survivors(text(done)), [], 'the escaped sleep 1003 survived the cancel');
  });

  it('timeout: a descendant that left the session (setsid, double fork) is gone too', async () => {
    const run = await start({ runnerCommand: [python, 'escape.py', 'sleep'], timeoutS: 1 }).done();
    assert.equal(run.outcome.timedOut, true);
    assert.equal(pidsIn(text(run)).length, 1);
    assert.deepEqual(await survivors(text(run)), [], 'the escaped sleep 1003 survived the timeout');
  });

  it('a leader that exits on its own takes a descendant that left the session with it', async () => {
    const run = await start({ runnerCommand: [python, 'escape.py', 'exit'] }).done();
    assert.equal(run.outcome.exitCode, 0);
    assert.equal(run.outcome.cancelled || run.outcome.timedOut, false);
    assert.equal(pidsIn(text(run)).length, 1);
    assert.deepEqual(await survivors(text(run)), [], 'the escaped sleep 1003 outlived its attempt');
  });

  it('exit 0 before the timeout is completed, even while a setsid child still holds stdout', async () => {
    // The leader's exit decides: a leftover holding the pipes must neither delay it into the timeout nor
    // add to its duration.
    const run = await start({
      runnerCommand: ['sh', '-c', 'setsid sh -c \'echo "pid $$"; exec sleep 1007\' & sleep 1.2; echo \'{"done":1}\' > "$COMPUTALOT_RESULT_PATH"; exit 0'],
      timeoutS: 2,
    }).done();
    assert.equal(run.outcome.exitCode, 0);
    assert.equal(run.outcome.timedOut, false);
    assert.equal(run.outcome.cancelled, false);
    assert.equal(run.outcome.resultFileText, '{"done":1}\n');
    assert.ok(run.outcome.durationMs < 2_000, `duration ${run.outcome.durationMs} ms holds the drain`);
    assert.deepEqual(await survivors(text(run)), [], 'the setsid child outlived its attempt');
  });

  it('cancel: a child that handles SIGTERM gets the grace to clean up after the leader died', async () => {
    const marker = join(scratch, `cleaned-${mode}`);
    const graceful = new ProcessRuntime({ killGraceMs: 10_000, drainMs: 300, progressPollMs: 20, taskCgroups: mode === 'cgroup' });
    try {
      const ownGraceful = await graceful.prepare(prepareInput(hashOf('graceful'), join(scratch, `graceful-${mode}`)));
      const run = startOn({
        prepared: ownGraceful,
        runnerCommand: ['sh', 'cleanup.sh'],
        env: { MARKER: marker },
        onOutput: (chunk, stream) => {
          run.seen.output.push([stream, chunk.toString()]);
          if (chunk.toString().includes('pid')) run.attempt.cancel();
        },
      }, graceful);
      const done = await run.done();
      assert.equal(done.outcome.cancelled, true);
      assert.equal(done.outcome.signal, 'SIGTERM', 'the leader died of the SIGTERM');
      assert.equal(await readFile(marker, 'utf8').catch(() => 'no cleanup'), 'cleaned\n');
      assert.deepEqual(await survivors(text(done)), []);
    } finally {
      await graceful.close();
    }
  });

  if (mode === 'cgroup') it('a helper that dies is replaced at once, and the new one ends what the dead one left', async () => {
    const launcher = rt.launcher as HelperLauncher;
    const run = start({ runnerCommand: [python, 'escape.py', 'sleep'] });
    for (const until = Date.now() + 10_000; !/pid \d+/.test(text(run.seen)) && Date.now() < until;) await new Promise((r) => setTimeout(r, 10));
    const [escaped] = pidsIn(text(run.seen));
    assert.ok(escaped && alive(escaped));
    const dead = launcher.pid!;
    // The helper must have lived a second (a younger one is left to the next launch: no crash loop).
    await new Promise((r) => setTimeout(r, 1_000));
    process.kill(dead, 'SIGKILL');
    await run.done();
    for (const until = Date.now() + 5_000; alive(escaped) && Date.now() < until;) await new Promise((r) => setTimeout(r, 20));
    const left = alive(escaped);
    if (left) process.kill(escaped, 'SIGKILL');
    assert.equal(left, false, 'the escaped sleep outlived its dead helper, with no launch to follow');
    // The new helper ended it during its start, before its READY: give the READY a moment to arrive.
    for (const until = Date.now() + 5_000; !launcher.pid && Date.now() < until;) await new Promise((r) => setTimeout(r, 20));
    assert.ok(launcher.pid && launcher.pid !== dead, 'a new helper runs');
  });

  it('the leader exiting kills what it left behind in its group', async () => {
    const run = await start({ runnerCommand: ['sh', '-c', 'sleep 1000 & echo "pid $!"; exit 0'] }).done();
    assert.equal(run.outcome.exitCode, 0);
    // The SIGKILL went out when the leader exited; the kernel acts on it when the process next runs, which
    // on a loaded machine can be a few ms after the outcome (seen failing with another test file running).
    const pids = pidsIn(text(run));
    for (const until = Date.now() + 2_000; pids.some(alive) && Date.now() < until;) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(pids.filter(alive), []);
  });
});

describe('process runtime: attempt files', { skip }, () => {
  it('shows the checkpoint folder to the task and keeps it; removes the scratch files', async () => {
    const checkpointDir = join(scratch, 'checkpoints', 'tsk_1');
    await mkdir(checkpointDir, { recursive: true });
    await writeFile(join(checkpointDir, 'prev.txt'), 'from-attempt-0\n');
    const run = await start({ runnerCommand: ['sh', 'checkpoint.sh'], checkpointDir }).done();
    assert.equal(run.outcome.exitCode, 0);
    const [prev, scratchDir] = text(run).trim().split('\n');
    assert.equal(prev, 'from-attempt-0');
    assert.equal(await readFile(join(checkpointDir, 'new.txt'), 'utf8'), 'written-by-task\n');
    assert.ok(scratchDir?.startsWith(join(workDir, 'attempts')));
    assert.equal(existsSync(scratchDir!), false, 'the scratch folder is removed');
    assert.deepEqual(await leftovers(), [], 'nothing is left of the attempt');
  });

  it('a command that cannot be started yields runner_not_found / runner_not_executable, naming it and the workdir', async () => {
    for (const [command, code] of [['no-such-runner-xyz', 'runner_not_found'], ['./missing.sh', 'runner_not_found'], ['./noexec.sh', 'runner_not_executable']] as const) {
      const run = await start({ runnerCommand: [command] }).done();
      assert.equal(run.outcome.exitCode, null);
      assert.equal(run.started, false);
      assert.equal(run.outcome.error?.code, code, command);
      assert.ok(run.outcome.error.message.includes(command) && run.outcome.error.message.includes(prepared.workdir), run.outcome.error.message);
    }
    assert.deepEqual(await leftovers(), []);
  });

  it('reuses an emptied attempt folder: the next attempt sees only its own payload, an empty scratch/ and 0700/0600 modes', async () => {
    // The first task leaves a result, progress, and modes it changed; its folder is kept (nothing else there).
    const first = await start({
      runnerCommand: ['sh', '-c', 'echo 1 > "$COMPUTALOT_RESULT_PATH"; echo \'{"progress": 1}\' >> "$COMPUTALOT_PROGRESS_PATH"; chmod 500 "$COMPUTALOT_SCRATCH_DIR"; chmod 400 "$COMPUTALOT_TASK_PAYLOAD"; dirname "$COMPUTALOT_TASK_PAYLOAD"'],
      payload: { first: 'a much longer payload than the next one' },
    }).done();
    assert.equal(first.outcome.exitCode, 0);
    assert.ok((await readdir(join(workDir, 'attempts'))).some((n) => n.startsWith('.free-')), 'the folder was kept');
    const second = await start({
      runnerCommand: ['sh', '-c', 'd=$(dirname "$COMPUTALOT_TASK_PAYLOAD"); echo "$d"; ls -A "$d" | tr "\\n" " "; echo; ls -A "$COMPUTALOT_SCRATCH_DIR" | wc -l; cat "$COMPUTALOT_TASK_PAYLOAD"; echo; stat -c %a "$d" "$COMPUTALOT_SCRATCH_DIR" "$COMPUTALOT_TASK_PAYLOAD" | tr "\\n" " "'],
      payload: { second: 2 },
    }).done();
    assert.equal(second.outcome.exitCode, 0, text(second));
    const [dir, entries, scratchCount, payload, modes] = text(second).trim().split('\n');
    assert.notEqual(dir, text(first).trim(), 'each attempt has its own folder name');
    assert.equal(entries?.trim(), 'payload.json scratch');
    assert.equal(scratchCount?.trim(), '0');
    assert.deepEqual(JSON.parse(payload!), { second: 2 }, 'the payload is the new one, whole, with nothing of the old');
    assert.equal(modes?.trim(), '700 700 600');
    assert.deepEqual(await leftovers(), []);
  });

  it('never hands on a kept folder that something wrote into while it waited (it is removed instead)', async () => {
    // A runtime and work dir of its own: the kept folders here are exactly this pool's.
    const dir = join(scratch, 'pool-check');
    const rt = new ProcessRuntime({ killGraceMs: 300, drainMs: 300 });
    try {
      const own = await rt.prepare(prepareInput(hashOf('pool-check'), dir));
      assert.equal((await start({ prepared: own, runnerCommand: ['true'] }, rt).done()).outcome.exitCode, 0);
      const root = join(dir, 'attempts');
      const kept = (await readdir(root)).filter((n) => n.startsWith('.free-'));
      assert.equal(kept.length, 1);
      // As a process that escaped its task's group could, with the folder open.
      await writeFile(join(root, kept[0]!, 'scratch', 'late-write'), 'x');
      const run = await start({ prepared: own, runnerCommand: ['sh', '-c', 'ls -A "$(dirname "$COMPUTALOT_TASK_PAYLOAD")" "$COMPUTALOT_SCRATCH_DIR" | tr "\\n" " "'] }, rt).done();
      assert.equal(run.outcome.exitCode, 0);
      assert.ok(!text(run).includes('late-write'), text(run));
      const all = execFileSync('find', [root], { encoding: 'utf8' });
      assert.ok(!all.includes('late-write'), all);
      assert.equal((await readdir(root)).filter((n) => n.startsWith('.free-')).length, 1, 'the clean folder of the second attempt is kept');
    } finally {
      await rt.close();
    }
    // A later server process (a new runtime) removes what this one kept.
    const next = new ProcessRuntime({ killGraceMs: 300, drainMs: 300 });
    try {
      const own = await next.prepare(prepareInput(hashOf('pool-check'), dir));
      assert.equal((await start({ prepared: own, runnerCommand: ['sh', '-c', 'ls -A "$(dirname "$(dirname "$COMPUTALOT_TASK_PAYLOAD")")"'] }, next).done()).outcome.exitCode, 0);
      const kept = (await readdir(join(dir, 'attempts'))).filter((n) => n.startsWith('.free-'));
      assert.equal(kept.length, 1, `only the new process's own folder: ${kept.join(' ')}`);
    } finally {
      await next.close();
    }
  });

  it('keeps no folder with anything else in it: scratch files, extra files, a symlink for a result', async () => {
    const scripts = [
      'echo x > "$COMPUTALOT_SCRATCH_DIR/leftover-scratch"',
      'echo x > "$(dirname "$COMPUTALOT_TASK_PAYLOAD")/leftover-extra"',
      'ln -s /etc/hostname "$COMPUTALOT_RESULT_PATH"; touch "$(dirname "$COMPUTALOT_TASK_PAYLOAD")/leftover-link"',
      'mkdir "$(dirname "$COMPUTALOT_TASK_PAYLOAD")/leftover-dir"',
    ];
    for (const script of scripts) {
      const run = await start({ runnerCommand: ['sh', '-c', script] }).done();
      assert.equal(run.outcome.exitCode, 0, script);
      assert.deepEqual(await leftovers(), [], script);
      const all = execFileSync('find', [join(workDir, 'attempts')], { encoding: 'utf8' });
      assert.ok(!all.includes('leftover-'), `${script}: removed whole\n${all}`);
    }
    assert.equal(existsSync('/etc/hostname'), true);
  });
});

describe('process runtime: prepare and discard', { skip }, () => {
  it('concurrent prepares of one hash share one extraction into <workDir>/revisions/<hash>', async () => {
    let extractions = 0;
    const rt = new ProcessRuntime({ unpack: (path, dest) => ((extractions += 1), extractTarball(path, dest)) });
    const dir = join(scratch, 'concurrent');
    const hash = hashOf('concurrent');
    const phases: string[] = [];
    const all = await Promise.all(Array.from({ length: 5 }, () => rt.prepare(prepareInput(hash, dir, tarball, phases))));
    assert.equal(extractions, 1);
    assert.equal(new Set(all.map((p) => p.key)).size, 1);
    assert.equal(all[0]!.workdir, join(dir, 'revisions', `sha256-${hash.slice(7)}`));
    assert.deepEqual([...new Set(phases)], ['fetch']);
    assert.deepEqual(all[0]!.timings.build_ms + all[0]!.timings.init_ms + all[0]!.timings.sandbox_ms, 0);
    assert.ok(all[0]!.warnings.some((w) => w.includes('Dockerfile is not used')));
    const again = await rt.prepare(prepareInput(hash, dir));
    assert.equal(again.cold, false);
    assert.equal(extractions, 1);
    assert.deepEqual((await readdir(join(dir, 'revisions'))).sort(), [`sha256-${hash.slice(7)}`], 'no temp folder is left');
    await rt.close();
  });

  it('a failed extraction names its phase and leaves nothing that looks ready; the next prepare retries', async () => {
    const dir = join(scratch, 'failing');
    const hash = hashOf('failing');
    await assert.rejects(runtime.prepare(prepareInput(hash, dir, join(scratch, 'no-such.tar.gz'))), (error: unknown) =>
      error instanceof RuntimeError && error.phase === 'fetch');
    assert.deepEqual(await readdir(join(dir, 'revisions')), []);
    const ok = await runtime.prepare(prepareInput(hash, dir));
    assert.equal(existsSync(join(ok.workdir, 'env_dump.py')), true);
  });

  it('discard lets a running attempt finish, then removes the tree; later runs need a new prepare', async () => {
    const dir = join(scratch, 'discard');
    const own = await runtime.prepare(prepareInput(hashOf('discard'), dir));
    const checkpointDir = join(scratch, 'handshake-discard');
    let up: () => void;
    const isUp = new Promise<void>((resolve) => (up = resolve));
    const run = start({
      prepared: own, checkpointDir, timeoutS: 30,
      runnerCommand: ['sh', '-c', 'echo up; while [ ! -e "$COMPUTALOT_CHECKPOINT_DIR/go" ]; do sleep 0.01; done; cat lib/data.txt'],
      onOutput: (chunk, stream) => {
        run.seen.output.push([stream, chunk.toString()]);
        if (text(run.seen).includes('up')) up();
      },
    });
    await Promise.race([isUp, run.attempt.outcome]);
    await runtime.discard(own);
    assert.equal(existsSync(own.workdir), false, 'the tree is moved aside at once');
    const refused = await start({ prepared: own, runnerCommand: ['true'] }).done();
    assert.equal(refused.outcome.error?.code, 'runtime_not_prepared');
    await writeFile(join(checkpointDir, 'go'), '');
    const done = await run.done();
    assert.equal(done.outcome.exitCode, 0);
    assert.equal(text(done), 'up\nrevision data\n', 'the running task kept its cwd');
    assert.deepEqual(await readdir(join(dir, 'revisions')), []);
  });
});
