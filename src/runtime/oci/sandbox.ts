/**
 * One running sandbox: a container started from a revision's image with the helper as its PID 1, on
 * gVisor by default (SPEC §8 sandbox defaults):
 *
 *   podman [--runtime runsc …] run -i --rm --name <name> --network=none --security-opt no-new-privileges
 *     --entrypoint /computalot/bin/helper -v <helper>:/computalot/bin/helper:ro -v <io>:/computalot/io
 *     [-v <cache>:<path>]… [-v <data>:<mount>:ro]… [--memory … --cpus …] <image>
 *
 * Nothing else of the host is mounted. `/computalot/io` holds the attempts' folders (payload, result,
 * progress, scratch, checkpoint); the worker creates them on the host side. Process specs (argv, env) go
 * to the helper inline, over its stdin.
 *
 * Invariants: `spawn` never throws (failures arrive through the handlers); `exec` resolves (never rejects)
 * with what happened; `stop` is idempotent and leaves no container behind.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeSpec, HelperChannel, type ProcessHandlers } from './helper-channel.js';
import { podman, RUNC_ULIMITS, runtimeFlags, type EngineOptions } from './podman.js';

export const IO_MOUNT = '/computalot/io';
const HELPER_MOUNT = '/computalot/bin/helper';

export interface Mount {
  host: string;
  container: string;
  readOnly: boolean;
}

export interface SandboxSpec {
  engine: EngineOptions;
  name: string;
  image: string;
  kind: 'gvisor' | 'runc';
  helperPath: string;
  /** Host folder mounted at /computalot/io. */
  ioDir: string;
  workdir: string;
  mounts: Mount[];
  /** Whole-sandbox backstops; per-process limits are set by the helper. */
  memoryMb: number | null;
  cpus: number | null;
  pids: number | null;
  labels: Record<string, string>;
}

export interface SpawnOptions {
  cwd: string;
  /** Over the image's own environment. */
  env: Record<string, string>;
  memoryBytes?: number | null;
  nproc?: number | null;
}

export interface ExecResult {
  code: number | null;
  signal: number | null;
  /** stdout and stderr as they came, the last `keep` bytes. */
  output: string;
  errno: number | null;
  timedOut: boolean;
  lost: string | null;
}

export interface SpawnedProcess {
  readonly id: string;
  kill(signal: number): void;
}

export class Sandbox {
  private stopped = false;

  private constructor(readonly spec: SandboxSpec, private readonly channel: HelperChannel) {}

  static podmanArgs(spec: SandboxSpec): string[] {
    const args = [...runtimeFlags(spec.engine, spec.kind), 'run', '-i', '--rm', '--name', spec.name,
      '--network=none', '--security-opt', 'no-new-privileges', '--log-driver', 'none',
      '--entrypoint', HELPER_MOUNT, '--workdir', spec.workdir,
      '-v', `${spec.helperPath}:${HELPER_MOUNT}:ro`, '-v', `${spec.ioDir}:${IO_MOUNT}`];
    for (const m of spec.mounts) args.push('-v', `${m.host}:${m.container}${m.readOnly ? ':ro' : ''}`);
    if (spec.kind === 'runc') {
      args.push(...RUNC_ULIMITS);
      if (spec.pids) args.push('--pids-limit', String(spec.pids));
    }
    if (spec.memoryMb) args.push('--memory', `${spec.memoryMb}m`, '--memory-swap', `${spec.memoryMb}m`);
    if (spec.cpus) args.push('--cpus', String(spec.cpus));
    for (const [k, v] of Object.entries(spec.labels)) args.push('--label', `${k}=${v}`);
    args.push(spec.image);
    return args;
  }

  static async start(spec: SandboxSpec): Promise<Sandbox> {
    // Names carry a random suffix, and a crashed worker's containers are removed by label before its
    // successor's first preparation, so no `rm` of a same-named leftover is needed here (~30 ms saved).
    await mkdir(join(spec.ioDir, 'attempts'), { recursive: true });
    const channel = await HelperChannel.start(spec.engine.podman, Sandbox.podmanArgs(spec));
    return new Sandbox(spec, channel);
  }

  get alive(): boolean {
    return !this.stopped && this.channel.alive;
  }

  get ended(): Promise<string> {
    return this.channel.ended;
  }

  /** Starts a process through the helper. */
  spawn(argv: string[], opts: SpawnOptions, handlers: ProcessHandlers): SpawnedProcess {
    const id = `p${randomBytes(6).toString('hex')}`;
    this.channel.run(id, encodeSpec({ argv, ...opts }), handlers);
    return { id, kill: (signal) => this.channel.kill(id, signal) };
  }

  /** Runs a command to completion (validation, init, healthchecks), keeping the last `keep` bytes of output. */
  exec(argv: string[], opts: SpawnOptions & { timeoutMs: number; keep?: number; onOutput?: (text: string) => void }): Promise<ExecResult> {
    const keep = opts.keep ?? 64 * 1024;
    return new Promise((resolve) => {
      let output = '';
      let timedOut = false;
      let timer: NodeJS.Timeout | null = null;
      const done = (r: Omit<ExecResult, 'output' | 'timedOut'>): void => {
        if (timer) clearTimeout(timer);
        resolve({ ...r, output, timedOut });
      };
      const proc = this.spawn(argv, opts, {
        onStart: () => {
          timer = setTimeout(() => { timedOut = true; proc.kill(9); }, opts.timeoutMs);
        },
        onError: (errno) => done({ code: null, signal: null, errno, lost: null }),
        onOutput: (chunk) => {
          const text = chunk.toString('utf8');
          opts.onOutput?.(text);
          output = (output + text).slice(-keep);
        },
        onExit: ({ code, signal }) => done({ code, signal, errno: null, lost: null }),
        onLost: (lost) => done({ code: null, signal: null, errno: null, lost }),
      });
    });
  }

  /** Ends the helper (which kills every process) and removes the container. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.channel.close();
    const gone = await Promise.race([this.channel.ended.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5_000).unref())]);
    if (!gone) this.channel.destroy();
    await podman(this.spec.engine, ['rm', '-f', '--time', '0', this.spec.name]);
    await rm(this.spec.ioDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** errno numbers the helper reports, as the port's attempt error codes. */
export function errnoName(errno: number): string {
  return ({ 2: 'ENOENT', 13: 'EACCES', 8: 'ENOEXEC', 21: 'EISDIR', 20: 'ENOTDIR', 7: 'E2BIG', 12: 'ENOMEM', 11: 'EAGAIN' } as Record<number, string>)[errno] ?? `errno ${errno}`;
}
