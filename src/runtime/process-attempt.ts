/**
 * One attempt of the `process` runtime, from `run()` to its outcome:
 *
 *   setup files ─▶ spawn (own process group) ─▶ onStart ─▶ … exit ─▶ tree gone ─▶ drain ─▶ read result ─▶ rm
 *        │ cancel: never spawns        timeout / cancel: SIGTERM group ─(grace)─▶ SIGKILL group
 *
 * Invariants:
 * - `outcome` never rejects and settles once, after the attempt folder is removed and the revision is
 *   released (a tree discarded while this attempt ran is deleted by then).
 * - A cancel before spawn means no process ever starts. After spawn, timeout and cancel both SIGTERM the
 *   group and SIGKILL it at the grace deadline; the first of them decides `timedOut` / `cancelled`.
 * - When the leader exits on its own, whatever it left in its group is SIGKILLed at once: nobody waits for
 *   those processes, and they would hold stdout open. When it exits while terminating, the rest of the
 *   group gets until the grace deadline to finish its SIGTERM handling, then SIGKILL.
 * - stdout/stderr are read until every holder has closed them, but at most `drainMs` after the group is
 *   gone, so a daemon that escaped the group cannot hold the attempt open forever.
 * - No sync fs calls and no extra processes between `run()` and the spawn: two thread-pool hops (mkdir,
 *   payload write), then spawn.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { attemptPaths, createAttemptFiles, readResultFile, removeAttemptFiles } from './attempt-files.js';
import { TailBuffer } from './output-capture.js';
import type { AttemptErrorCode, AttemptInput, AttemptOutcome, RunningAttempt } from './port.js';
import { RESULT_LIMIT_BYTES, STDOUT_TAIL_BYTES } from './port.js';
import { ProcessGroup } from './process-tree.js';
import { ProgressFollower } from './progress-file.js';
import type { Revision } from './revision-cache.js';
import { protocolVars, taskEnv } from './task-env.js';

export interface AttemptOptions {
  killGraceMs: number;
  drainMs: number;
  progressPollMs: number;
  hostEnv: Readonly<Record<string, string>>;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function notStarted(): AttemptOutcome {
  return {
    exitCode: null, signal: null, timedOut: false, cancelled: false,
    resultFileText: null, resultFileBytes: 0, stdoutTail: '', durationMs: 0,
  };
}

export const failed = (code: AttemptErrorCode, message: string): AttemptOutcome => ({ ...notStarted(), error: { code, message } });
const cancelledBeforeStart = (): AttemptOutcome => ({ ...notStarted(), cancelled: true });

/** Callbacks must not throw (port.ts); a throw is dropped so it cannot leave a process group behind. */
export function safely<A extends unknown[]>(callback: (...args: A) => void, ...args: A): void {
  try {
    callback(...args);
  } catch {
    // dropped on purpose, see above
  }
}

export class ProcessAttempt implements RunningAttempt {
  readonly outcome: Promise<AttemptOutcome>;
  private reason: 'timeout' | 'cancel' | null = null;
  private group: ProcessGroup | null = null;
  private exited = false;
  private killDeadline = Infinity;
  private killTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly input: AttemptInput,
    private readonly revision: Revision,
    private readonly options: AttemptOptions,
    release: () => Promise<void>,
  ) {
    this.outcome = this.execute()
      .catch((error: unknown) => failed('runner_spawn_failed', `The attempt failed inside the worker: ${String(error)}`))
      .finally(release);
  }

  cancel(): void {
    this.terminate('cancel');
  }

  private terminate(reason: 'timeout' | 'cancel'): void {
    if (this.reason !== null || this.exited) return;
    this.reason = reason;
    if (this.group) this.signalTermination();
  }

  private signalTermination(): void {
    const group = this.group!;
    group.signal('SIGTERM');
    this.killDeadline = performance.now() + this.options.killGraceMs;
    this.killTimer = setTimeout(() => group.signal('SIGKILL'), this.options.killGraceMs);
  }

  private async execute(): Promise<AttemptOutcome> {
    const { input, revision } = this;
    const command = input.runnerCommand;
    if (command.length === 0 || command.some((arg) => typeof arg !== 'string' || arg.includes('\0')) || command[0] === '') {
      return failed('invalid_runner_command', `The runner command ${JSON.stringify(command)} is empty or holds a NUL byte; set runner_command or entrypoint.command to a non-empty array of strings.`);
    }
    if (this.reason) return cancelledBeforeStart();
    const paths = attemptPaths(revision.attemptsDir, input.ids.taskId, input.ids.attempt);
    try {
      await createAttemptFiles(paths, input.payload, input.checkpointDir);
    } catch (error) {
      await removeAttemptFiles(paths.dir);
      return failed('attempt_setup_failed', `Could not write the attempt's files under ${paths.dir}: ${(error as Error).message}`);
    }
    try {
      if (this.reason) return cancelledBeforeStart();
      const protocol = protocolVars({ ...paths, checkpoint: input.checkpointDir }, input.ids);
      const env = taskEnv(this.options.hostEnv, input.prepared.manifestEnv, input.env, protocol);
      return await this.supervise(command, env, paths.result, paths.progress);
    } catch (error) {
      this.group?.signal('SIGKILL'); // a bug past the spawn must not leave the task running unsupervised
      throw error;
    } finally {
      await removeAttemptFiles(paths.dir);
    }
  }

  private async supervise(command: string[], env: Record<string, string>, resultPath: string, progressPath: string): Promise<AttemptOutcome> {
    const { input, options } = this;
    const cwd = this.revision.dir;
    let child: ChildProcess;
    try {
      // detached: setsid() in the child, so the whole tree shares one process group we can signal.
      child = spawn(command[0]!, command.slice(1), { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      return failed('runner_spawn_failed', `Could not start ${JSON.stringify(command[0])} in ${cwd}: ${(error as Error).message}`);
    }
    const tail = new TailBuffer(STDOUT_TAIL_BYTES);
    const streamsClosed = Promise.all(
      [child.stdout!, child.stderr!].map((stream) => new Promise<void>((resolve) => {
        stream.once('close', resolve);
        stream.on('error', () => {}); // a broken pipe is just the end of the output
      })),
    );
    child.stdout!.on('data', (chunk: Buffer) => {
      tail.push(chunk);
      safely(input.onOutput, chunk, 'stdout');
    });
    child.stderr!.on('data', (chunk: Buffer) => safely(input.onOutput, chunk, 'stderr'));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const spawnError = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
      child.once('spawn', () => resolve(null));
      child.once('error', resolve);
    });
    if (spawnError) {
      child.stdout!.destroy();
      child.stderr!.destroy();
      return this.spawnFailure(spawnError, command[0]!, cwd, env.PATH ?? '');
    }
    child.on('error', () => {}); // later errors (none expected: we never child.kill) must not crash the worker
    const startedAt = performance.now();
    this.group = new ProcessGroup(child.pid!);
    safely(input.onStart);
    if (this.reason) this.signalTermination(); // a cancel that arrived during the spawn itself
    const timeoutMs = input.timeoutS * 1000;
    const timeoutTimer = Number.isFinite(timeoutMs) && timeoutMs > 0
      ? setTimeout(() => this.terminate('timeout'), Math.min(timeoutMs, MAX_TIMER_MS))
      : null;
    const progress = new ProgressFollower(progressPath, input.onProgress, options.progressPollMs);
    progress.start();

    const { code, signal } = await exit;
    this.exited = true;
    const durationMs = Math.round(performance.now() - startedAt);
    if (timeoutTimer) clearTimeout(timeoutTimer);
    if (this.reason === null) {
      this.group.signal('SIGKILL');
    } else if (!(await this.group.waitGone(this.killDeadline))) {
      this.group.signal('SIGKILL');
    }
    if (this.killTimer) clearTimeout(this.killTimer);
    const drainTimer = new AbortController();
    await Promise.race([streamsClosed, sleep(options.drainMs, undefined, { signal: drainTimer.signal }).catch(() => {})]);
    drainTimer.abort();
    child.stdout!.destroy();
    child.stderr!.destroy();
    await progress.finish();
    const result = await readResultFile(resultPath, RESULT_LIMIT_BYTES);
    return {
      exitCode: code, signal, timedOut: this.reason === 'timeout', cancelled: this.reason === 'cancel',
      resultFileText: result.text, resultFileBytes: result.bytes, stdoutTail: tail.text(), durationMs,
    };
  }

  private async spawnFailure(error: NodeJS.ErrnoException, command: string, cwd: string, path: string): Promise<AttemptOutcome> {
    const where = command.includes('/') ? `relative to the workdir ${cwd}` : `on PATH (${path}) for a task in ${cwd}`;
    if (error.code === 'ENOENT') {
      // spawn reports a missing cwd as ENOENT of the command: tell the two apart.
      const cwdExists = await stat(cwd).then((s) => s.isDirectory(), () => false);
      if (!cwdExists) return failed('runtime_not_prepared', `The unpacked revision ${cwd} is gone (discarded while this attempt started); prepare the runtime again.`);
      return failed('runner_not_found', `The runner command "${command}" was not found ${where}, or its #! interpreter does not exist; fix runner_command (or entrypoint.command), or install the program on the worker.`);
    }
    if (error.code === 'EACCES') {
      return failed('runner_not_executable', `The runner command "${command}" (${where}) may not be executed: it is a folder or lacks the x bit; chmod +x it and push again, or start it through its interpreter, e.g. ["python3", "${command}"].`);
    }
    return failed('runner_spawn_failed', `Could not start "${command}" in ${cwd}: ${error.message}`);
  }
}
