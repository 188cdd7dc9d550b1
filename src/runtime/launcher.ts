/**
 * How the `process` runtime starts a task process: the seam between supervising an attempt
 * (process-attempt.ts: timeouts, cancel, the process group, files) and forking it. Three launchers:
 *
 * - `HelperLauncher` (helper-launcher.ts, the default): the sandbox helper, a static C process, forks
 *   tasks on the host (1.56× the attempt rate of the Node spawner, bench/spawn.ts).
 * - `SpawnerLauncher` (spawner-client.ts, the fallback without a C compiler): a small resident Node process
 *   forks tasks, so the server's main thread never pays for fork() (~2.5 ms in a ~200 MB server; it capped
 *   throughput at ~200 tasks/s).
 * - `InlineLauncher` (here): child_process.spawn in the server itself; for comparison, and a fallback.
 *
 * Invariants both keep:
 * - A task leads its own process group (pgid = pid), gets exactly `env`, stdin /dev/null, and its stdout
 *   and stderr as separate streams delivered in arrival order, each chunk once.
 * - `started` settles once: a pid (the process runs, `exited` and `drained` will settle), a spawn error
 *   with its errno name, `withdrawn` (nothing ever ran), or `lost` (the launcher died first).
 * - After a pid, `exited` settles once (the leader exited and was reaped, or `lost`); `drained` settles
 *   when both streams reached end of file, or the launcher died: no output comes after it.
 * - `withdraw()` before the fork means no fork; after it, a no-op. `release()` stops reading output (the
 *   drain time is over); it is idempotent and a no-op once drained.
 * - Callers signal the group with kill(-pid), which keeps working when a launcher process has died. A
 *   launcher that can reach further, the whole tree with descendants that left the group, offers
 *   `signalTree` and `treeGone` too (the helper: its per-task anchor); the others leave both undefined.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export type SpawnerMode = 'helper' | 'process' | 'inline';

export interface LaunchSpec {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
}

export type LaunchStart = { pid: number } | { errno: string; message: string } | { withdrawn: true } | { lost: string };
export type LaunchExit = { code: number | null; signal: NodeJS.Signals | null } | { lost: string };
export type OutputSink = (chunk: Buffer, stream: 'stdout' | 'stderr') => void;

export interface LaunchedTask {
  readonly started: Promise<LaunchStart>;
  /** The leader's exit, as soon as it is known (the outcome is decided then, not after the drain). */
  readonly exited: Promise<LaunchExit>;
  readonly drained: Promise<void>;
  /** Settles when no process of the task's tree is left (escaped descendants included), or the launcher died. */
  readonly treeGone?: Promise<void>;
  withdraw(): void;
  release(): void;
  /** Signals every process of the task's tree, escaped descendants included, until `treeGone`. */
  signalTree?(signal: NodeJS.Signals): void;
}

export interface Launcher {
  /** `onOutput` must not throw (callers wrap their callbacks). */
  launch(spec: LaunchSpec, onOutput: OutputSink): LaunchedTask;
  /** Starts resident resources ahead of the first launch (optional; a launch starts them anyway). */
  warm?(): void;
  /** Ends resident resources (the spawner process); call once no task is running. */
  close(): Promise<void>;
}

const never = new Promise<never>(() => {});

export class InlineLauncher implements Launcher {
  launch(spec: LaunchSpec, onOutput: OutputSink): LaunchedTask {
    let child: ChildProcess;
    try {
      // detached: setsid() in the child, so the whole tree shares one process group we can signal.
      child = spawn(spec.argv[0]!, spec.argv.slice(1), { cwd: spec.cwd, env: spec.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      const { code, message } = error as NodeJS.ErrnoException;
      const started = Promise.resolve<LaunchStart>({ errno: code ?? 'EINVAL', message });
      return { started, exited: never, drained: Promise.resolve(), withdraw() {}, release() {} };
    }
    const streams = [child.stdout, child.stderr];
    const release = (): void => streams.forEach((stream) => stream?.destroy());
    const drained = Promise.all(streams.map((stream) => stream && new Promise<void>((resolve) => {
      stream.once('close', resolve);
      stream.on('error', () => {}); // a broken pipe is just the end of the output
    }))).then(() => {});
    child.stdout?.on('data', (chunk: Buffer) => onOutput(chunk, 'stdout'));
    child.stderr?.on('data', (chunk: Buffer) => onOutput(chunk, 'stderr'));
    const exited = new Promise<LaunchExit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const started = new Promise<LaunchStart>((resolve) => {
      child.once('spawn', () => resolve({ pid: child.pid! }));
      child.once('error', (error: NodeJS.ErrnoException) => {
        release(); // after EMFILE/ENFILE there are not even pipes
        resolve({ errno: error.code ?? 'UNKNOWN', message: error.message });
      });
    });
    child.on('error', () => {}); // later errors (none expected: we never child.kill) must not crash the worker
    // The fork is done by now (spawn is synchronous): a withdraw is too late, the caller terminates instead.
    return { started, exited, drained, withdraw() {}, release };
  }

  async close(): Promise<void> {}
}
