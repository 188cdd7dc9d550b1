/**
 * A `Launcher` for the `process` runtime whose tasks are forked by the sandbox helper
 * (oci/helper/computalot-helper.c) running on the host: a static C process of ~1 MB, so each fork costs a
 * fraction of what Node's child_process.spawn costs in the spawner process (`node --import tsx
 * bench/spawn.ts`: 1,269 vs 814 `true` attempts/s, 8 at a time). Same protocol as inside a sandbox.
 *
 * Invariants (the Launcher's, launcher.ts):
 * - The helper starts on `warm` or the first `launch`, with an empty environment (the server's env holds secrets;
 *   every task gets exactly its spec's env), and again on the first `launch` after it died, or at once in
 *   cgroup mode (the new helper ends the trees the dead one left).
 * - A task leads its own session and group (setsid in the helper); stdin is /dev/null. It runs in a cgroup
 *   of its own where the host lets the helper make one (`cgroups`, default on), else under an anchor, a
 *   per-task subreaper forked by the helper: either way every descendant stays within reach (see the
 *   helper's header), so this launcher offers `signalTree` and `treeGone`.
 * - `started` settles once; `exited` settles when the helper reports the leader's exit (X, at once), so
 *   leftovers holding stdout can neither delay nor change the outcome; `drained` and `treeGone` settle
 *   together when the helper reports the tree gone and its output drained (D); a helper death settles
 *   every open task with `lost` (`exited` only if it had not settled).
 * - `withdraw()` before the spec was sent means no fork. The caller signals the group itself too, so that
 *   works even when the helper is gone; `signalTree` (K) reaches descendants that left the group.
 * - Without a C compiler the helper cannot be built: the launcher falls back to the Node spawner process
 *   for good, and says why once through `onFallback`.
 */
import { constants } from 'node:os';
import type { LaunchedTask, Launcher, LaunchExit, LaunchSpec, LaunchStart, OutputSink } from './launcher.js';
import { helperBinary } from './oci/helper-binary.js';
import { encodeSpec, HelperChannel } from './oci/helper-channel.js';
import { errnoName } from './oci/sandbox.js';
import { SpawnerLauncher } from './spawner-client.js';

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

export class HelperLauncher implements Launcher {
  private channel: Promise<HelperChannel> | null = null;
  private current: HelperChannel | null = null;
  private fallback: SpawnerLauncher | null = null;
  /** Task ids on the channel: unique per helper process, which is all the protocol needs. */
  private sequence = 0;
  private closed = false;

  /**
   * `binDir`: a work dir the compiled helper may live under (`<binDir>/oci/bin/`). `cgroups`: let the helper
   * put each task in a cgroup of its own when it can (COMPUTALOT_TASK_CGROUPS). `onTreeMode`: told how each
   * helper it starts keeps task trees (an operator learns whether cgroups were usable).
   */
  constructor(
    private readonly binDir: string,
    private readonly opts: { onFallback?: (why: string) => void; cgroups?: boolean; onTreeMode?: (mode: 'cgroup' | 'anchor') => void } = {},
  ) {}

  private ensure(): Promise<HelperChannel> {
    if (!this.channel) {
      const pending = helperBinary(this.binDir).then((bin) => HelperChannel.start(bin, this.opts.cgroups === false ? [] : ['--cgroups'], {}));
      this.channel = pending;
      pending.then((channel) => {
        this.current = channel;
        this.opts.onTreeMode?.(channel.treeMode);
        const startedAt = Date.now();
        void channel.ended.then(() => {
          if (this.channel === pending) this.channel = null;
          // A helper that died (SIGKILLed, its output corrupt) took its leaders along (PDEATHSIG) but left
          // the rest of their trees in its cgroups, which the next helper's start ends: start it now, not
          // at the next launch. Not for one that died within a second (a crash loop would spin).
          if (!this.closed && channel.treeMode === 'cgroup' && Date.now() - startedAt >= 1_000) this.warm();
        });
      }, () => { if (this.channel === pending) this.channel = null; });
    }
    return this.channel;
  }

  /** Compiles (once per source version) and starts the helper now; a failure is left to the first launch. */
  warm(): void {
    if (!this.fallback) this.ensure().catch(() => undefined);
  }

  launch(spec: LaunchSpec, onOutput: OutputSink): LaunchedTask {
    if (this.fallback) return this.fallback.launch(spec, onOutput);
    let setStarted!: (value: LaunchStart) => void;
    let setExited!: (value: LaunchExit) => void;
    let setDrained!: () => void;
    const started = new Promise<LaunchStart>((resolve) => { setStarted = resolve; });
    const exited = new Promise<LaunchExit>((resolve) => { setExited = resolve; });
    const drained = new Promise<void>((resolve) => { setDrained = resolve; });
    let withdrawn = false;
    let released = false;
    let delegate: LaunchedTask | null = null;
    let signalTree: (signal: NodeJS.Signals) => void = () => undefined;
    const start = (channel: HelperChannel) => {
      if (withdrawn) {
        setStarted({ withdrawn: true });
        setDrained();
        return;
      }
      this.sequence += 1;
      const id = `t${this.sequence.toString(36)}`;
      signalTree = (signal) => channel.kill(id, constants.signals[signal]);
      channel.run(id, encodeSpec(spec), {
        onStart: (pid) => setStarted({ pid }),
        onError: (errno) => {
          const name = errnoName(errno);
          setStarted({ errno: name, message: `${name} starting ${spec.argv[0]}` });
          setDrained();
        },
        onOutput: (chunk, stream) => { if (!released) onOutput(chunk, stream); },
        onLeaderExit: ({ code, signal }) => setExited({ code, signal: signal === null ? null : (SIGNAL_NAMES.get(signal) ?? null) }),
        onExit: ({ code, signal }) => {
          setExited({ code, signal: signal === null ? null : (SIGNAL_NAMES.get(signal) ?? null) }); // a no-op after X
          setDrained();
        },
        onLost: (reason) => {
          setStarted({ lost: reason });
          setExited({ lost: reason });
          setDrained();
        },
      });
    };
    // A running helper gets the task now, in this turn: through the promise, the launch waited behind
    // whatever the turn had queued (the submit's HTTP answer was written first, server timestamps).
    const ready = this.channel !== null && this.current?.alive ? this.current : null;
    if (ready) start(ready);
    else this.ensure().then(start, (error: Error) => {
      // No helper (no C compiler): the Node spawner from now on, this task included.
      if (!this.fallback) {
        this.fallback = new SpawnerLauncher();
        this.opts.onFallback?.(error.message);
      }
      delegate = this.fallback.launch(spec, onOutput);
      void delegate.started.then(setStarted);
      void delegate.exited.then(setExited);
      void delegate.drained.then(setDrained);
      if (withdrawn) delegate.withdraw();
    });
    return {
      started, exited, drained,
      // The fallback launcher has no anchor: there the tree is the group, which the caller waits for itself.
      get treeGone() { return delegate ? undefined : drained; },
      withdraw: () => { withdrawn = true; delegate?.withdraw(); },
      release: () => { released = true; delegate?.release(); },
      signalTree: (signal) => signalTree(signal),
    };
  }

  /** How the running helper keeps task trees (`cgroup` or `anchor`), once it runs. */
  get treeMode(): 'cgroup' | 'anchor' | undefined {
    return this.current?.alive ? this.current.treeMode : undefined;
  }

  /** The running helper's pid, if any (tests check that it ends with its server). */
  get pid(): number | undefined {
    return this.current?.alive ? this.current.pid : undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    const channel = await this.channel?.catch(() => null);
    if (channel) {
      channel.close();
      await channel.ended;
    }
    await this.fallback?.close();
  }
}
