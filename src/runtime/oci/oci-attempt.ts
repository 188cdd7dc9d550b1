/**
 * One attempt of the `oci` runtime, from `run()` to its outcome:
 *
 *   sandbox (the warm one, or a fresh one for reuse "none") ─▶ attempt folder under /computalot/io
 *     ─▶ task-scoped services ─▶ helper starts the runner (own session) ─▶ onStart ─▶ … exit (X)
 *     ─▶ progress, result, checkpoint copied back ─▶ folder removed ─▶ services stopped
 *
 * Invariants (the port's, kept here for the sandbox):
 * - `outcome` never rejects and settles once, after the attempt folder is removed.
 * - A cancel before the helper started the runner means it never starts.
 * - Timeout and cancel send SIGTERM to the runner's whole process tree inside the sandbox (the helper's
 *   per-task anchor keeps descendants that left the group within reach), SIGKILL after the grace period,
 *   also when the leader exited in between; when the leader exits on its own the helper SIGKILLs the rest
 *   of its tree at once.
 * - The leader's exit (the helper's X) decides the outcome and `durationMs`; the attempt ends once the tree
 *   is gone and its output drained (D), and a timeout or cancel in between changes nothing.
 * - The checkpoint folder is the caller's: its contents are copied in before and back after the attempt
 *   (a copy, so a worker that dies mid-attempt leaves the last good checkpoint where it was).
 * - The task owns its attempt folder inside the sandbox, and gVisor writes its symlinks to the host as real
 *   symlinks: the worker never follows one. Files are opened with O_NOFOLLOW, and the result and checkpoint
 *   are read only if the attempt folder still resolves to itself. Symlinks are copied as they are.
 * - Limits per process tree: RLIMIT_AS = `resources.memory_mb`, RLIMIT_NPROC = `resources.pids` (set by
 *   the helper; gVisor enforces both).
 */
import { randomBytes } from 'node:crypto';
import { cp, lstat, mkdir, realpath, rename, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { attemptPaths, createAttemptFiles, readResultFile, removeAttemptFiles } from '../attempt-files.js';
import { StdoutCapture } from '../output-capture.js';
import { DEFAULT_KILL_GRACE_MS, RESULT_LIMIT_BYTES, STDOUT_TAIL_BYTES, type AttemptErrorCode, type AttemptInput, type AttemptOutcome, type RunningAttempt } from '../port.js';
import { cancelledBeforeStart, failed, invalidRunnerCommand, safely } from '../process-attempt.js';
import { ProgressFollower } from '../progress-file.js';
import { protocolVars, taskEnv } from '../task-env.js';
import { errnoName, IO_MOUNT, type Sandbox, type SpawnedProcess } from './sandbox.js';
import { ServiceGroup } from './services.js';
import type { NormalizedManifest } from '../../protocol/manifest.js';

/**
 * The attempt folder is still the folder the worker made, not a symlink a task put in its place (tasks
 * own /computalot/io inside the sandbox; the worker reads the result and checkpoint from the host side).
 */
async function untampered(dir: string, ioRoot: string): Promise<boolean> {
  // The io root is the mount point itself, which a task cannot replace; everything below it, it can.
  const [real, root] = await Promise.all([realpath(dir).catch(() => null), realpath(ioRoot).catch(() => null)]);
  return real !== null && root !== null && real === join(root, relative(ioRoot, dir));
}

/** `<io>/attempts` as a real folder: a symlink (or file) a task left there is removed and the folder made. */
async function realAttemptsRoot(ioRoot: string): Promise<void> {
  const root = join(ioRoot, 'attempts');
  const stat = await lstat(root).catch(() => null);
  if (stat && (stat.isSymbolicLink() || !stat.isDirectory())) await rm(root, { recursive: true, force: true });
  await mkdir(root, { recursive: true, mode: 0o700 });
}

/**
 * Copies the attempt's checkpoint back into the caller's folder without ever leaving it half written: the
 * copy goes to a sibling, which replaces the folder only once complete (a full disk or a crash mid-copy
 * keeps the previous checkpoint).
 */
async function keepCheckpoint(from: string, to: string): Promise<void> {
  const fresh = `${to}.new-${randomBytes(4).toString('hex')}`;
  const old = `${to}.old-${randomBytes(4).toString('hex')}`;
  try {
    await cp(from, fresh, { recursive: true, force: true, verbatimSymlinks: true });
    await rename(to, old).catch(() => undefined);
    await rename(fresh, to);
    await rm(old, { recursive: true, force: true });
  } catch {
    await rm(fresh, { recursive: true, force: true });
    await rename(old, to).catch(() => undefined);
  }
}

export interface SandboxLease {
  sandbox: Sandbox;
  release(): Promise<void>;
}

export interface OciAttemptOptions {
  killGraceMs: number;
  progressPollMs: number;
  manifest: NormalizedManifest;
  /** The warm sandbox, or a fresh one (reuse "none"); rejects with a message when none can be had. */
  lease(): Promise<SandboxLease>;
}

const MAX_TIMER_MS = 2 ** 31 - 1;
const SIGTERM = 15;
const SIGKILL = 9;
const SIGNALS: Record<number, string> = { 1: 'SIGHUP', 2: 'SIGINT', 6: 'SIGABRT', 9: 'SIGKILL', 11: 'SIGSEGV', 13: 'SIGPIPE', 15: 'SIGTERM' };


export class OciAttempt implements RunningAttempt {
  readonly outcome: Promise<AttemptOutcome>;
  private reason: 'timeout' | 'cancel' | null = null;
  private proc: SpawnedProcess | null = null;
  private started = false;
  private exited = false;
  private killTimer: NodeJS.Timeout | null = null;

  constructor(private readonly input: AttemptInput, private readonly options: OciAttemptOptions) {
    this.outcome = this.execute().catch((error: unknown) => failed('runner_spawn_failed', `The attempt failed inside the worker: ${String(error)}`));
  }

  cancel(): void {
    this.terminate('cancel');
  }

  private terminate(reason: 'timeout' | 'cancel'): void {
    if (this.reason !== null || this.exited) return;
    this.reason = reason;
    if (this.started) this.signalTermination();
  }

  private signalTermination(): void {
    const proc = this.proc!;
    proc.kill(SIGTERM);
    this.killTimer = setTimeout(() => proc.kill(SIGKILL), this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
  }

  private async execute(): Promise<AttemptOutcome> {
    const { input } = this;
    const command = input.runnerCommand;
    const invalid = invalidRunnerCommand(command);
    if (invalid) return invalid;
    if (this.reason) return cancelledBeforeStart();
    let lease: SandboxLease;
    try {
      lease = await this.options.lease();
    } catch (error) {
      return failed('runtime_not_prepared', (error as Error).message);
    }
    try {
      if (this.reason) return cancelledBeforeStart();
      return await this.inSandbox(lease.sandbox, command);
    } finally {
      await lease.release();
    }
  }

  private async inSandbox(sandbox: Sandbox, command: string[]): Promise<AttemptOutcome> {
    const { input, options } = this;
    const hostIo = sandbox.spec.ioDir;
    const paths = attemptPaths(join(hostIo, 'attempts'), input.ids.taskId, input.ids.attempt);
    const inside = (hostPath: string): string => `${IO_MOUNT}/${relative(hostIo, hostPath)}`;
    const checkpoint = input.checkpointDir ? join(paths.dir, 'checkpoint') : null;
    try {
      // Tasks of this sandbox could have put a symlink where the attempts folder was: remake it first.
      await realAttemptsRoot(hostIo);
      await createAttemptFiles(paths, input.payload, checkpoint);
      if (input.checkpointDir && checkpoint) await cp(input.checkpointDir, checkpoint, { recursive: true, force: true, verbatimSymlinks: true });
    } catch (error) {
      await removeAttemptFiles(paths.dir);
      return failed('attempt_setup_failed', `Could not write the attempt's files under ${paths.dir}: ${(error as Error).message}`);
    }
    const workdir = input.prepared.workdir;
    const protocol = protocolVars({
      payload: inside(paths.payload), result: inside(paths.result), progress: inside(paths.progress),
      scratch: inside(paths.scratch), checkpoint: checkpoint ? inside(checkpoint) : null,
    }, input.ids);
    // The image's own environment is the base (the helper's); then manifest env, job env, protocol.
    const env = taskEnv({}, input.prepared.manifestEnv, input.env, protocol);
    const taskServices = options.manifest.runtime.services.filter((s) => s.scope === 'task');
    let services: ServiceGroup | null = null;
    try {
      if (taskServices.length > 0) {
        services = new ServiceGroup(sandbox, taskServices, { workdir, env: { ...input.prepared.manifestEnv, ...input.env }, onLog: (text) => safely(input.onOutput, Buffer.from(text), 'stderr') });
        try {
          await services.start();
        } catch (error) {
          return failed('attempt_setup_failed', `A task-scoped service did not start: ${(error as Error).message}`);
        }
      }
      if (this.reason) return cancelledBeforeStart();
      const outcome = await this.supervise(sandbox, command, env, paths.result, paths.progress, paths.dir, hostIo);
      if (input.checkpointDir && checkpoint && await untampered(paths.dir, hostIo)) await keepCheckpoint(checkpoint, input.checkpointDir);
      return outcome;
    } finally {
      services?.stop();
      await removeAttemptFiles(paths.dir);
    }
  }

  private supervise(sandbox: Sandbox, command: string[], env: Record<string, string>, resultPath: string, progressPath: string, attemptDir: string, ioRoot: string): Promise<AttemptOutcome> {
    const { input, options } = this;
    const resources = options.manifest.resources ?? {};
    const tail = new StdoutCapture(STDOUT_TAIL_BYTES, RESULT_LIMIT_BYTES);
    return new Promise<AttemptOutcome>((resolve) => {
      let startedAt = 0;
      let timeoutTimer: NodeJS.Timeout | null = null;
      let progress: ProgressFollower | null = null;
      let durationMs: number | null = null;
      let leaderExit: { code: number | null; signal: number | null } | null = null;
      const leaderExited = (): void => {
        this.exited = true;
        durationMs ??= startedAt === 0 ? 0 : Math.round(performance.now() - startedAt);
        if (timeoutTimer) clearTimeout(timeoutTimer);
        // A kill timer keeps running: after SIGTERM the rest of the tree gets until the grace deadline.
      };
      const finish = async (end: { code: number | null; signal: number | null } | { lost: string }): Promise<void> => {
        leaderExited();
        if (this.killTimer) clearTimeout(this.killTimer);
        await progress?.finish();
        const common = { timedOut: this.reason === 'timeout', cancelled: this.reason === 'cancel', stdoutTail: tail.text(), durationMs: durationMs! };
        if ('lost' in end) {
          resolve({ ...failed('runner_spawn_failed', `The task was killed: ${end.lost}.`), ...common });
          return;
        }
        // The task could have swapped its attempt folder for a symlink to a host folder: read nothing then.
        const result = await untampered(attemptDir, ioRoot) ? await readResultFile(resultPath, RESULT_LIMIT_BYTES) : { text: null, bytes: 0 };
        resolve({
          exitCode: end.code, signal: end.signal === null ? null : (SIGNALS[end.signal] ?? `SIG${end.signal}`),
          resultFileText: result.text, resultFileBytes: result.bytes, ...common,
        });
      };
      this.proc = sandbox.spawn(command, {
        cwd: input.prepared.workdir, env,
        memoryBytes: resources.memory_mb ? resources.memory_mb * 1024 * 1024 : null,
        // Under runc the sandbox's root is the host's root user, whose RLIMIT_NPROC counts every root
        // process on the host: there the container's pids cgroup (--pids-limit) is the limit instead.
        nproc: options.manifest.runtime.sandbox === 'gvisor' ? (resources.pids ?? null) : null,
      }, {
        onStart: () => {
          this.started = true;
          startedAt = performance.now();
          safely(input.onStart);
          if (this.reason) this.signalTermination(); // a cancel that came while the helper forked
          const timeoutMs = input.timeoutS * 1000;
          if (Number.isFinite(timeoutMs) && timeoutMs > 0) timeoutTimer = setTimeout(() => this.terminate('timeout'), Math.min(timeoutMs, MAX_TIMER_MS));
          progress = new ProgressFollower(progressPath, input.onProgress, options.progressPollMs);
          progress.start();
        },
        onError: (errno) => resolve(this.spawnFailure(errno, command[0]!, env.PATH)),
        onOutput: (chunk, stream) => {
          if (stream === 'stdout') tail.push(chunk);
          safely(input.onOutput, chunk, stream);
        },
        onLeaderExit: (exit) => { leaderExit = exit; leaderExited(); },
        onExit: (exit) => void finish(exit),
        // Once the exit is known, a sandbox that dies during the drain only cuts the output short.
        onLost: (lost) => void finish(leaderExit ?? { lost }),
      });
    });
  }

  private spawnFailure(errno: number, command: string, path: string | undefined): AttemptOutcome {
    const name = errnoName(errno);
    const workdir = this.input.prepared.workdir;
    const where = command.includes('/') ? `relative to the workdir ${workdir}` : `on the image's PATH${path ? ` (${path})` : ''}`;
    let code: AttemptErrorCode = 'runner_spawn_failed';
    let message = `Could not start "${command}" in the sandbox: ${name}.`;
    if (name === 'ENOENT') {
      code = 'runner_not_found';
      message = `The runner command "${command}" was not found ${where} inside the image (or the workdir ${workdir} does not exist there); fix runner_command (or entrypoint.command), or install the program in the Dockerfile.`;
    } else if (name === 'EACCES' || name === 'ENOEXEC' || name === 'EISDIR') {
      code = 'runner_not_executable';
      message = `The runner command "${command}" (${where}) may not be executed (${name}): it is a folder, lacks the x bit or is not a program; chmod +x it in the Dockerfile, or start it through its interpreter, e.g. ["python3", "${command}"].`;
    }
    return failed(code, message);
  }
}
