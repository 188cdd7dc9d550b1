/**
 * The container engine, as the commands this runtime runs (DESIGN §6 facts about podman here):
 * - podman's default OCI runtime, crun, fails on cgroups v1 hybrid hosts: builds and runc sandboxes use runc
 *   (`npm run setup` writes it into containers.conf; we also pass it, so a host without that file works);
 * - runc fails on podman's default rlimits: `--ulimit nofile=1024:20000 --ulimit nproc=1024:1024`;
 * - gVisor: `--runtime <runsc> --runtime-flag platform=ptrace --runtime-flag network=none` and `--network=none`
 *   (systrap fails and kvm hangs with this runsc; without network=none it refuses to start);
 * - image names are always `localhost/…`: unqualified names do not resolve without a registry.
 *
 * Every command is an argv array (never a shell string): names and paths from manifests cannot inject.
 */
import { execFile, spawn } from 'node:child_process';

export interface EngineOptions {
  /** The podman binary (COMPUTALOT_PODMAN, default `podman`). */
  podman: string;
  /** The runsc binary for gVisor sandboxes (COMPUTALOT_RUNSC, default `/usr/bin/runsc`). */
  runsc: string;
  /** runc, for builds and `runtime.sandbox: "runc"`. */
  runc: string;
}

export const DEFAULT_ENGINE: EngineOptions = { podman: 'podman', runsc: '/usr/bin/runsc', runc: 'runc' };

export const RUNC_ULIMITS = ['--ulimit', 'nofile=1024:20000', '--ulimit', 'nproc=1024:1024'];

/** Global flags that pick the OCI runtime of a sandbox. */
export function runtimeFlags(engine: EngineOptions, sandbox: 'gvisor' | 'runc'): string[] {
  if (sandbox === 'runc') return ['--runtime', engine.runc];
  return ['--runtime', engine.runsc, '--runtime-flag', 'platform=ptrace', '--runtime-flag', 'network=none'];
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs podman to completion; never rejects for a non-zero exit (callers decide what it means). */
export function podman(engine: EngineOptions, args: string[], opts: { timeoutMs?: number } = {}): Promise<CommandResult> {
  return runCommand(engine.podman, args, opts);
}

/** Runs a command (podman, runc) to completion; never rejects, whatever its exit. */
export function runCommand(command: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error ? (typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (error && code === null ? error.message : '') });
    });
  });
}

/**
 * Runs podman and streams its combined output to `onLog` as it comes (builds take minutes; the log tail
 * must show the step that is running). Resolves with the exit code; an abort kills podman.
 */
export function podmanStreaming(engine: EngineOptions, args: string[], env: NodeJS.ProcessEnv, onLog: (chunk: string) => void, signal?: AbortSignal): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(engine.podman, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    const onAbort = (): void => void child.kill('SIGTERM');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.setEncoding('utf8').on('data', onLog);
    child.stderr.setEncoding('utf8').on('data', onLog);
    child.on('error', (error) => {
      onLog(`could not run ${engine.podman}: ${error.message}\n`);
      resolve(null);
    });
    child.on('close', (code) => {
      signal?.removeEventListener('abort', onAbort);
      resolve(code);
    });
  });
}
