/**
 * The `process` runtime (SPEC §8): tasks run as host processes, without a sandbox, in the unpacked revision.
 * For development and for hosts without a container engine; status says so through `Prepared.warnings`.
 *
 * Invariants:
 * - Preparation is only "fetch": the tarball is unpacked once per content hash under
 *   `<workDir>/revisions/` (revision-cache.ts). The Dockerfile is not built, and `runtime.init`, services,
 *   validation, data sources, cache mounts and resource limits are not applied: they are written for the
 *   image, and running them on the host would be guesswork. `warnings` lists those the manifest uses.
 * - Workdir: `runtime.workdir` is a path inside a container; here the revision root *is* the workdir, so
 *   tasks start in `<workDir>/revisions/sha256-<hex>/` and relative paths mean what they mean in the image.
 *   Tasks share that tree (as they share a warm sandbox's filesystem in `oci`).
 * - Environment: the allow-list of task-env.ts (PATH, HOME, USER, LANG, LC_*, TZ, …), never the server's
 *   whole env, then manifest env, job env, and the COMPUTALOT_* variables.
 * - Not isolation: tasks run as the worker's user and can read what it can. Do not run untrusted code here.
 * - Task processes are forked by the helper (helper-launcher.ts: the sandbox helper, a static C process, on
 *   the host), started on the first attempt and ended by `close()`, so the server's main thread never pays
 *   for fork(); `spawner: 'process'` uses the Node spawner process (the fallback without a C compiler) and
 *   `spawner: 'inline'` spawns from the server itself (for comparison; behaviour is the same).
 * - `run` returns synchronously; a Prepared this runtime did not make, or has discarded, yields an outcome
 *   with `runtime_not_prepared` (the worker prepares again and retries).
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppError } from '../core/errors.js';
import type { NormalizedManifest } from '../protocol/manifest.js';
import { InlineLauncher, type Launcher, type SpawnerMode } from './launcher.js';
import { failed, ProcessAttempt, safely, type AttemptOptions } from './process-attempt.js';
import {
  DEFAULT_KILL_GRACE_MS,
  RuntimeError,
  type AttemptInput,
  type Prepared,
  type PrepareInput,
  type RunningAttempt,
  type Runtime,
} from './port.js';
import { RevisionCache, revisionFolderName, type Unpacker } from './revision-cache.js';
import { SpawnerLauncher } from './spawner-client.js';
import { HelperLauncher } from './helper-launcher.js';
import { AttemptDirPool } from './attempt-dir-pool.js';

/** Emptied attempt folders kept per attempts folder: enough for the slots of a few workers. */
const KEPT_ATTEMPT_DIRS = 64;
import { DEFAULT_PASS_ENV, hostEnv } from './task-env.js';

export interface ProcessRuntimeOptions {
  /** SIGTERM → SIGKILL grace (SPEC §6: 10 s). Tests shorten it. */
  killGraceMs?: number;
  /** How long to keep reading stdout/stderr after the process group is gone (escaped daemons). */
  drainMs?: number;
  progressPollMs?: number;
  /** Host variables tasks inherit; a trailing `*` is a prefix. */
  passEnv?: readonly string[];
  /** Where those are read from (default process.env), read once at construction. */
  hostEnv?: NodeJS.ProcessEnv;
  /** Replaces extractTarball (tests wrap the real one to count extractions). */
  unpack?: Unpacker;
  /** Who forks tasks: the helper (default), the Node spawner process (`process`) or the server (`inline`). */
  spawner?: SpawnerMode;
  /** A work dir for the compiled helper (`<helperDir>/oci/bin/`); default a folder in the OS temp dir. */
  helperDir?: string;
  /** Called once if the helper cannot be built and the Node spawner takes over. */
  onFallback?: (why: string) => void;
  /** A cgroup per task where the host allows it (default true); false keeps the anchor (helper-launcher.ts). */
  taskCgroups?: boolean;
  /** Told how each helper started keeps task trees: `cgroup`, or `anchor` where cgroups are off or unusable. */
  onTreeMode?: (mode: 'cgroup' | 'anchor') => void;
}

/** What the manifest asks for that this runtime does not do, as sentences for status. */
export function processRuntimeWarnings(manifest: NormalizedManifest): string[] {
  const warnings = ['Tasks run as host processes without a sandbox (process runtime); the Dockerfile is not used.'];
  const ignored: Array<[boolean, string]> = [
    [manifest.runtime.init.commands.length > 0, 'runtime.init commands are not run'],
    [manifest.runtime.services.length > 0, 'services are not started'],
    [manifest.validation.executables.length + manifest.validation.files.length + manifest.validation.commands.length > 0, 'validation checks are not run'],
    [manifest.data_sources.length > 0, 'data_sources are not mounted'],
    [manifest.cache_mounts.length > 0, 'cache_mounts are not mounted'],
    [Object.keys(manifest.resources ?? {}).length > 0, 'resources limits are not enforced'],
  ];
  const list = ignored.filter(([used]) => used).map(([, what]) => what);
  if (list.length > 0) warnings.push(`Under the process runtime ${list.join(', ')}.`);
  return warnings;
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export class ProcessRuntime implements Runtime {
  readonly kind = 'process' as const;
  private readonly revisions: RevisionCache;
  private readonly running = new Set<RunningAttempt>();
  private readonly attemptOptions: AttemptOptions;
  /** The launcher all attempts share (tests reach the spawner's pid through it). */
  readonly launcher: Launcher;
  private closed = false;
  /** Emptied attempt folders per attempts folder (attempt-dir-pool.ts). */
  private readonly pools = new Map<string, AttemptDirPool>();

  constructor(options: ProcessRuntimeOptions = {}) {
    this.revisions = new RevisionCache(options.unpack);
    this.launcher = options.spawner === 'inline' ? new InlineLauncher()
      : options.spawner === 'process' ? new SpawnerLauncher()
        : new HelperLauncher(options.helperDir ?? join(tmpdir(), 'computalot-helper'), {
          ...(options.onFallback ? { onFallback: options.onFallback } : {}),
          ...(options.onTreeMode ? { onTreeMode: options.onTreeMode } : {}),
          cgroups: options.taskCgroups ?? true,
        });
    this.attemptOptions = {
      killGraceMs: options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      drainMs: options.drainMs ?? 1_000,
      progressPollMs: options.progressPollMs ?? 100,
      hostEnv: hostEnv(options.passEnv ?? DEFAULT_PASS_ENV, options.hostEnv ?? process.env),
      launcher: this.launcher,
      pool: (root) => {
        let pool = this.pools.get(root);
        if (!pool) this.pools.set(root, pool = new AttemptDirPool(root, KEPT_ATTEMPT_DIRS));
        return pool;
      },
    };
  }

  async prepare(input: PrepareInput): Promise<Prepared> {
    const name = revisionFolderName(input.contentHash);
    if (name === null) {
      throw new RuntimeError('invalid_content_hash', `"${input.contentHash}" is not a content hash (sha256: + 64 lowercase hex digits).`, 'fetch');
    }
    input.signal.throwIfAborted();
    const started = performance.now();
    const entry = this.revisions.acquire(input.workDir, name, input.tarballPath);
    const wasReady = entry.state === 'ready';
    if (!wasReady) safely(input.onPhase, 'fetch');
    let extracted: boolean;
    try {
      extracted = await abortable(entry.ready, input.signal);
    } catch (error) {
      if (input.signal.aborted) throw error;
      const code = error instanceof AppError ? error.code : 'revision_unpack_failed';
      throw new RuntimeError(code, `Could not unpack revision ${input.contentHash}: ${(error as Error).message}`, 'fetch');
    }
    const cold = !wasReady && extracted;
    if (cold) safely(input.onLog, `Unpacked revision ${input.contentHash} for the process runtime; no image is built.\n`);
    return {
      kind: 'process',
      key: entry.dir,
      projectId: input.projectId,
      contentHash: input.contentHash,
      timings: { fetch_ms: Math.round(performance.now() - started), build_ms: 0, init_ms: 0, sandbox_ms: 0 },
      cold,
      workdir: entry.dir,
      manifestEnv: { ...input.manifest.env },
      warnings: processRuntimeWarnings(input.manifest),
    };
  }

  run(input: AttemptInput): RunningAttempt {
    const revision = this.closed || input.prepared.kind !== 'process' ? null : this.revisions.use(input.prepared.key);
    if (!revision) {
      const message = this.closed
        ? 'The process runtime is shutting down; the attempt was not started.'
        : `Revision ${input.prepared.contentHash} is not prepared on this worker (discarded or never prepared here); prepare it again.`;
      return { outcome: Promise.resolve(failed('runtime_not_prepared', message)), cancel: () => {} };
    }
    const attempt: RunningAttempt = new ProcessAttempt(input, revision, this.attemptOptions, () => {
      this.running.delete(attempt);
      return this.revisions.release(revision);
    });
    this.running.add(attempt);
    return attempt;
  }

  async discard(prepared: Prepared): Promise<void> {
    if (prepared.kind !== 'process') return;
    await this.revisions.discard(prepared.key);
  }

  warmUp(): void {
    if (!this.closed) this.launcher.warm?.();
  }

  async close(): Promise<void> {
    this.closed = true;
    const attempts = [...this.running];
    for (const attempt of attempts) attempt.cancel();
    await Promise.all(attempts.map((attempt) => attempt.outcome));
    await this.launcher.close();
  }
}
