/**
 * The worker's end of a sandbox's helper (helper/computalot-helper.c): `podman run -i` keeps the helper's
 * stdin and stdout attached, and this class speaks the helper's line protocol over them.
 *
 *   run(id, spec) ─▶ "I id len\n<spec>" ──▶ helper forks ──▶ "S id pid" | "E id errno"
 *                                   output        ──▶ "O id 1|2 len\n<bytes>" …
 *                                   leader exits  ──▶ "X id c code" | "X id s signal"   (at once: more O may follow)
 *                                   tree gone     ──▶ "D id"        (after every O of id)
 *   kill(id, sig) ─▶ "K id sig"      (the whole tree, escaped descendants included, until D)
 *
 * Invariants: each started process gets exactly one final callback (`onError`, `onExit` or `onLost`);
 * `onExit` comes at D, with the exit X reported, after all output; `onLeaderExit` (optional) comes at X, the
 * moment the leader's exit is known. When the channel dies (the sandbox crashed, podman was killed) every
 * process still open gets `onLost`, also one whose `onLeaderExit` came.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const MAX_OUTPUT_FRAME = 64 * 1024;
const START_TIMEOUT_MS = 120_000;

export interface ProcessHandlers {
  onStart(pid: number): void;
  onError(errno: number): void;
  onOutput(chunk: Buffer, stream: 'stdout' | 'stderr'): void;
  /** Final: the process tree is gone and every byte of output was delivered; `exit` is the leader's. */
  onExit(exit: { code: number | null; signal: number | null }): void;
  /** The leader exited (not final: output may follow, the rest of the tree may still run). */
  onLeaderExit?(exit: { code: number | null; signal: number | null }): void;
  onLost(reason: string): void;
}

export interface ProcessSpec {
  argv: string[];
  cwd: string;
  /** Over the helper's own environment (in a sandbox: the image's). */
  env: Record<string, string>;
  /** RLIMIT_AS in bytes, RLIMIT_NPROC; null or 0 for none. */
  memoryBytes?: number | null;
  nproc?: number | null;
}

/** The helper's spec fields: cwd, memory, nproc, argc, argv…, envc, NAME=value…, each NUL-terminated. */
export function encodeSpec(spec: ProcessSpec): Buffer {
  const env = Object.entries(spec.env).filter(([k, v]) => k !== '' && !k.includes('=') && !`${k}${v}`.includes('\0'));
  const fields = [spec.cwd, String(spec.memoryBytes ?? 0), String(spec.nproc ?? 0), String(spec.argv.length), ...spec.argv,
    String(env.length), ...env.map(([k, v]) => `${k}=${v}`)];
  return Buffer.from(fields.map((f) => `${f}\0`).join(''));
}

export class HelperChannel {
  private readonly procs = new Map<string, ProcessHandlers>();
  /** The leader's exit (X) of processes whose tree is not gone yet (no D). */
  private readonly exits = new Map<string, { code: number | null; signal: number | null }>();
  private buffer: Buffer = Buffer.alloc(0);
  private pendingOutput: { id: string; stream: 'stdout' | 'stderr'; length: number } | null = null;
  private stderrTail = '';
  private dead: string | null = null;
  private closing = false;
  private mode: 'cgroup' | 'anchor' = 'anchor';
  private broken = false;
  readonly ready: Promise<void>;
  /** Settles when podman exits, with the reason. */
  readonly ended: Promise<string>;

  private constructor(private readonly child: ChildProcess) {
    let markReady!: () => void;
    let failReady!: (error: Error) => void;
    this.ready = new Promise((resolve, reject) => { markReady = resolve; failReady = reject; });
    let isReady = false;
    this.ended = new Promise((resolve) => {
      child.on('error', (error) => this.die(`could not run podman: ${error.message}`, resolve));
      child.on('close', (code, signal) => this.die(`the sandbox stopped (podman exit ${code ?? signal})${this.stderrTail ? `: ${this.stderrTail.trim()}` : ''}`, resolve));
    });
    void this.ended.then((reason) => { if (!isReady) failReady(new Error(reason)); });
    child.stderr!.setEncoding('utf8').on('data', (text: string) => { this.stderrTail = (this.stderrTail + text).slice(-4096); });
    child.stdout!.on('data', (chunk: Buffer) => {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      this.parse(() => { isReady = true; markReady(); });
    });
    child.stdin!.on('error', () => undefined); // a dead sandbox shows up as 'close'
  }

  /**
   * Starts `command` (`podman run -i … helper` for a sandbox, or the helper itself on the host) and waits
   * for the helper's READY line. `env` replaces the environment (the host helper gets an empty one).
   */
  static async start(command: string, args: string[], env?: NodeJS.ProcessEnv): Promise<HelperChannel> {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...(env ? { env } : {}) });
    const channel = new HelperChannel(child);
    // A sandbox that never says READY (a hung runtime) must not hold its preparation forever.
    const timer = setTimeout(() => child.kill('SIGKILL'), START_TIMEOUT_MS);
    try {
      await channel.ready;
    } finally {
      clearTimeout(timer);
    }
    channel.updateRef();
    return channel;
  }

  /**
   * The helper keeps the event loop alive only while processes are in flight (as child processes do): an
   * idle worker may exit without closing its runtime.
   */
  private updateRef(): void {
    const busy = this.procs.size > 0 || this.closing;
    for (const handle of [this.child, this.child.stdin, this.child.stdout, this.child.stderr] as Array<{ ref?(): void; unref?(): void } | null>) {
      if (busy) handle?.ref?.();
      else handle?.unref?.();
    }
  }

  /** The pid of the process this channel started (podman, or the helper itself on the host). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * How the helper keeps each task's process tree: a cgroup per task (host, `--cgroups`, where cgroup2 is
   * writable) or an anchor process per task (sandboxes, and hosts without that). Known once ready.
   */
  get treeMode(): 'cgroup' | 'anchor' {
    return this.mode;
  }

  get alive(): boolean {
    return this.dead === null;
  }

  get deathReason(): string | null {
    return this.dead;
  }

  /** The podman stderr so far (start-up errors of the runtime). */
  get stderr(): string {
    return this.stderrTail;
  }

  /** Starts a process: `spec` is the helper's NUL-terminated fields (see `encodeSpec`). */
  run(id: string, spec: Buffer, handlers: ProcessHandlers): void {
    if (this.dead !== null) {
      queueMicrotask(() => handlers.onLost(this.dead!));
      return;
    }
    this.procs.set(id, handlers);
    if (this.procs.size === 1) this.updateRef();
    this.child.stdin!.write(Buffer.concat([Buffer.from(`I ${id} ${spec.length}\n`), spec]));
  }

  kill(id: string, signal: number): void {
    if (this.dead === null && this.procs.has(id)) this.child.stdin!.write(`K ${id} ${signal}\n`);
  }

  /** Ends the helper: it SIGKILLs every process and exits, which stops the sandbox. */
  close(): void {
    this.closing = true;
    this.updateRef(); // whoever awaits `ended` must not see the event loop run dry first
    this.child.stdin!.end();
  }

  /** SIGKILLs podman itself (the sandbox is removed separately by name). */
  destroy(): void {
    this.child.kill('SIGKILL');
  }

  /**
   * A line the helper never writes: the stream can no longer be trusted (nothing else should be able to
   * write to it), so the sandbox is ended and every process in it is reported lost.
   */
  private corrupt(line: string): void {
    this.broken = true;
    this.buffer = Buffer.alloc(0);
    this.stderrTail += `\nthe helper's output was corrupt (${JSON.stringify(line.slice(0, 80))}); the sandbox was stopped`;
    this.child.kill('SIGKILL');
  }

  private forget(id: string): void {
    this.exits.delete(id);
    if (this.procs.delete(id) && this.procs.size === 0) this.updateRef();
  }

  private die(reason: string, resolve: (reason: string) => void): void {
    if (this.dead !== null) return;
    this.dead = reason;
    const open = [...this.procs.values()];
    this.procs.clear();
    this.exits.clear();
    for (const handlers of open) handlers.onLost(reason);
    resolve(reason);
  }

  private parse(onReady: () => void): void {
    for (;;) {
      if (this.dead !== null || this.broken) return;
      if (this.pendingOutput) {
        const { id, stream, length } = this.pendingOutput;
        if (this.buffer.length < length) return;
        const chunk = this.buffer.subarray(0, length);
        this.buffer = this.buffer.subarray(length);
        this.pendingOutput = null;
        this.procs.get(id)?.onOutput(chunk, stream);
        continue;
      }
      const nl = this.buffer.indexOf(10);
      if (nl < 0) return;
      const line = this.buffer.subarray(0, nl).toString('utf8');
      this.buffer = this.buffer.subarray(nl + 1);
      const [kind, id = '', a = '', b = ''] = line.split(' ');
      const handlers = this.procs.get(id);
      switch (kind) {
        case 'READY':
          if (id === 'cgroup') this.mode = 'cgroup';
          onReady();
          break;
        case 'O': {
          const length = Number(b);
          // The helper reads at most 64 KiB at a time: anything else is not the helper speaking.
          if (!Number.isInteger(length) || length < 0 || length > MAX_OUTPUT_FRAME) return this.corrupt(line);
          this.pendingOutput = { id, stream: a === '2' ? 'stderr' : 'stdout', length };
          break;
        }
        case 'S':
          handlers?.onStart(Number(a));
          break;
        case 'E':
          this.forget(id);
          handlers?.onError(Number(a));
          break;
        case 'X': {
          const exit = a === 's' ? { code: null, signal: Number(b) } : { code: Number(b), signal: null };
          if (handlers) this.exits.set(id, exit);
          handlers?.onLeaderExit?.(exit);
          break;
        }
        case 'D': {
          const exit = this.exits.get(id);
          this.forget(id);
          if (exit) handlers?.onExit(exit);
          break;
        }
        default:
          return this.corrupt(line);
      }
    }
  }
}
