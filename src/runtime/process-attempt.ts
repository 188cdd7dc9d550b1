/**
 * One attempt of the `process` runtime, from `run()` to its outcome:
 *
 *   setup files ─▶ launch (own process group) ─▶ onStart ─▶ … exit ─▶ tree gone ─▶ drain ─▶ read result ─▶ rm
 *        │ cancel: never launches        timeout / cancel: SIGTERM tree ─(grace)─▶ SIGKILL tree
 *
 * The fork itself is the launcher's (launcher.ts): by default the C helper, whose per-task anchor keeps the
 * whole tree within reach (`signalTree`, `treeGone`); without it (the spawner, inline) the tree is the group.
 *
 * Invariants:
 * - `outcome` never rejects and settles once, after the attempt folder is removed and the revision is
 *   released (a tree discarded while this attempt ran is deleted by then).
 * - A cancel before the launch means no process ever starts; during it (the spawner's queue), the launch is
 *   withdrawn if the fork has not happened yet. Once started, timeout and cancel both SIGTERM the tree (the
 *   group, and through the launcher what left it) and SIGKILL it at the grace deadline; the first of them
 *   decides `timedOut` / `cancelled`, unless the leader had exited already.
 * - The leader's exit decides the outcome when it happens: exit code, signal and `durationMs` are taken
 *   then, and a timeout or cancel after it changes nothing (leftovers holding stdout cannot turn a finished
 *   task into a timed-out one).
 * - When the leader exits on its own, whatever it left is SIGKILLed at once (the group here, the rest of
 *   the tree by the helper): nobody waits for those processes, and they would hold stdout open. When it
 *   exits while terminating, the rest of the tree gets until the grace deadline to finish its SIGTERM
 *   handling, then SIGKILL.
 * - stdout/stderr are read until every holder has closed them, but at most `drainMs` after the tree is
 *   gone (or its SIGKILL), so nothing can hold the attempt open forever.
 * - If the launcher dies (the spawner process crashed), nothing can report the task's exit or output any
 *   more: its group is SIGKILLed and the outcome is `runner_spawn_failed` with exitCode null. Once the
 *   exit is known, a death during the drain only cuts the output short, like a drain timeout.
 * - No extra processes between `run()` and the launch: the attempt files, then the launch request.
 */
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import type { Dirent } from 'node:fs';
import { attemptPaths, createAttemptFiles, listAttemptDir, readResultFile, removeAttemptFiles } from './attempt-files.js';
import type { AttemptDirPool } from './attempt-dir-pool.js';
import type { LaunchedTask, Launcher } from './launcher.js';
import { StdoutCapture } from './output-capture.js';
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
  launcher: Launcher;
  /** The kept attempt folders for an attempts folder (attempt-dir-pool.ts), if reused. */
  pool?: (attemptsDir: string) => AttemptDirPool;
}

const MAX_TIMER_MS = 2 ** 31 - 1;

function notStarted(): AttemptOutcome {
  return {
    exitCode: null, signal: null, timedOut: false, cancelled: false,
    resultFileText: null, resultFileBytes: 0, stdoutTail: '', durationMs: 0,
  };
}

export const failed = (code: AttemptErrorCode, message: string): AttemptOutcome => ({ ...notStarted(), error: { code, message } });
export const cancelledBeforeStart = (): AttemptOutcome => ({ ...notStarted(), cancelled: true });

/** An empty argv or one with a NUL byte never reaches a launcher: the outcome that says so, else null. */
export function invalidRunnerCommand(command: string[]): AttemptOutcome | null {
  if (command.length === 0 || command.some((arg) => typeof arg !== 'string' || arg.includes('\0')) || command[0] === '') {
    return failed('invalid_runner_command', `The runner command ${JSON.stringify(command)} is empty or holds a NUL byte; set runner_command or entrypoint.command to a non-empty array of strings.`);
  }
  return null;
}

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
  private task: LaunchedTask | null = null;
  private group: ProcessGroup | null = null;
  private exited = false;
  private killDeadline = Infinity;
  private killTimer: NodeJS.Timeout | null = null;
  /** The attempt folder's entries once the task's group is gone (what is left to read and remove). */
  private listing: Dirent[] | null = null;

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
    else this.task?.withdraw();
  }

  private signalTermination(): void {
    this.signalTree('SIGTERM');
    this.killDeadline = performance.now() + this.options.killGraceMs;
    this.killTimer = setTimeout(() => this.signalTree('SIGKILL'), this.options.killGraceMs);
  }

  /**
   * Through the launcher the whole tree, then the group directly (which works when the launcher is dead).
   * In this order: the helper must see the K before the leader can die of the direct signal, or it would
   * take that death for an exit on its own and SIGKILL the rest at once instead of granting the grace.
   */
  private signalTree(signal: NodeJS.Signals): void {
    this.task?.signalTree?.(signal);
    this.group?.signal(signal);
  }

  /** True once the group, and the whole tree where the launcher knows it, are gone; false at the deadline. */
  private async treeGone(deadlineMs: number): Promise<boolean> {
    const tree = this.task?.treeGone;
    let timer: NodeJS.Timeout | undefined;
    const [group, rest] = await Promise.all([
      this.group!.waitGone(deadlineMs),
      tree ? Promise.race([tree.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(resolve, Math.max(0, deadlineMs - performance.now()), false)))]) : true,
    ]);
    clearTimeout(timer);
    return group && rest;
  }

  private async execute(): Promise<AttemptOutcome> {
    const { input, revision } = this;
    const command = input.runnerCommand;
    const invalid = invalidRunnerCommand(command);
    if (invalid) return invalid;
    if (this.reason) return cancelledBeforeStart();
    const paths = attemptPaths(revision.attemptsDir, input.ids.taskId, input.ids.attempt);
    const pool = this.options.pool?.(revision.attemptsDir) ?? null;
    try {
      // Written synchronously (small payloads): no await, so the launch below happens in this turn.
      const files = createAttemptFiles(paths, input.payload, input.checkpointDir, pool);
      if (files !== true) await files;
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
      this.task?.withdraw(); // a bug past the launch must not leave the task running unsupervised
      this.group?.signal('SIGKILL');
      throw error;
    } finally {
      await removeAttemptFiles(paths.dir, this.listing, pool);
    }
  }

  private async supervise(command: string[], env: Record<string, string>, resultPath: string, progressPath: string): Promise<AttemptOutcome> {
    const { input, options } = this;
    const cwd = this.revision.dir;
    const tail = new StdoutCapture(STDOUT_TAIL_BYTES, RESULT_LIMIT_BYTES);
    const task = options.launcher.launch({ argv: command, cwd, env }, (chunk, stream) => {
      if (stream === 'stdout') tail.push(chunk);
      safely(input.onOutput, chunk, stream);
    });
    this.task = task;
    const start = await task.started;
    if ('withdrawn' in start) return cancelledBeforeStart();
    if ('lost' in start) return failed('runner_spawn_failed', `Could not start ${JSON.stringify(command[0])}: ${start.lost}.`);
    if ('errno' in start) return this.spawnFailure(start, command[0]!, cwd, env.PATH ?? '');
    const startedAt = performance.now();
    this.group = new ProcessGroup(start.pid);
    safely(input.onStart);
    if (this.reason) this.signalTermination(); // a cancel that came during the launch, too late to withdraw it
    const timeoutMs = input.timeoutS * 1000;
    const timeoutTimer = Number.isFinite(timeoutMs) && timeoutMs > 0
      ? setTimeout(() => this.terminate('timeout'), Math.min(timeoutMs, MAX_TIMER_MS))
      : null;
    const progress = new ProgressFollower(progressPath, input.onProgress, options.progressPollMs);
    progress.start();

    const end = await task.exited;
    this.exited = true;
    const durationMs = Math.round(performance.now() - startedAt);
    if (timeoutTimer) clearTimeout(timeoutTimer);
    if ('lost' in end) {
      this.group.signal('SIGKILL'); // unwatched from now on: it must not run on
      if (this.killTimer) clearTimeout(this.killTimer);
      await progress.finish();
      const message = `The task was killed: ${end.lost} while it ran, so its exit and output could no longer be followed.`;
      return { ...failed('runner_spawn_failed', message), timedOut: this.reason === 'timeout', cancelled: this.reason === 'cancel', stdoutTail: tail.text(), durationMs };
    }
    const { code, signal } = end;
    if (this.reason === null) {
      this.group.signal('SIGKILL'); // the helper SIGKILLs the rest of the tree itself, at once
    } else if (!(await this.treeGone(this.killDeadline))) {
      this.signalTree('SIGKILL');
    }
    if (this.killTimer) clearTimeout(this.killTimer);
    // A plain timer, not an aborted timers/promises sleep: that costs an AbortError with a stack per attempt.
    let drainTimer: NodeJS.Timeout | undefined;
    await Promise.race([task.drained, new Promise<void>((resolve) => (drainTimer = setTimeout(resolve, options.drainMs)))]);
    clearTimeout(drainTimer);
    task.release();
    // One listing says which protocol files the task wrote (a `true` wrote none), and what to remove.
    this.listing = listAttemptDir(dirname(resultPath));
    const wrote = (name: string) => this.listing === null || this.listing.some((e) => e.name === name);
    await progress.finish(wrote(basename(progressPath)));
    const result = wrote(basename(resultPath)) ? await readResultFile(resultPath, RESULT_LIMIT_BYTES) : { text: null, bytes: 0 };
    return {
      exitCode: code, signal, timedOut: this.reason === 'timeout', cancelled: this.reason === 'cancel',
      resultFileText: result.text, resultFileBytes: result.bytes, stdoutTail: tail.text(), durationMs,
    };
  }

  private async spawnFailure(error: { errno: string; message: string }, command: string, cwd: string, path: string): Promise<AttemptOutcome> {
    const where = command.includes('/') ? `relative to the workdir ${cwd}` : `on PATH (${path}) for a task in ${cwd}`;
    if (error.errno === 'ENOENT') {
      // spawn reports a missing cwd as ENOENT of the command: tell the two apart.
      const cwdExists = await stat(cwd).then((s) => s.isDirectory(), () => false);
      if (!cwdExists) return failed('runtime_not_prepared', `The unpacked revision ${cwd} is gone (discarded while this attempt started); prepare the runtime again.`);
      return failed('runner_not_found', `The runner command "${command}" was not found ${where}, or its #! interpreter does not exist; fix runner_command (or entrypoint.command), or install the program on the worker.`);
    }
    if (error.errno === 'EACCES') {
      return failed('runner_not_executable', `The runner command "${command}" (${where}) may not be executed: it is a folder or lacks the x bit; chmod +x it and push again, or start it through its interpreter, e.g. ["python3", "${command}"].`);
    }
    return failed('runner_spawn_failed', `Could not start "${command}" in ${cwd}: ${error.message}`);
  }
}
