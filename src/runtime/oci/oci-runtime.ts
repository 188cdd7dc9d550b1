/**
 * The `oci` runtime (SPEC §4, §5, §8): revisions built into images with podman, tasks run inside gVisor
 * sandboxes, a warm sandbox per (project, content hash) on this worker that runs many tasks through its
 * resident helper.
 *
 *   prepare: fetch (unpack, data sources) ─▶ build (image, layer cache) ─▶ sandbox (start, helper READY)
 *            ─▶ validate ─▶ init commands ─▶ project services ─▶ warm
 *   run:     the warm sandbox's helper starts the runner (reuse "sandbox"), or a fresh sandbox per task
 *            with init and services run again (reuse "none")
 *   drop:    discard / invalidate / idle for COMPUTALOT_WARM_IDLE_S / low disk / the sandbox died
 *
 * Invariants:
 * - One preparation per (project, hash) at a time; concurrent callers share it; a failure leaves nothing
 *   that looks warm (the sandbox is stopped) and throws a RuntimeError with its phase.
 * - A dropped runtime's sandbox is stopped once its running attempts end ("running tasks finish");
 *   listeners hear of every drop so readiness stops saying `warm`.
 * - After `invalidate(project)` the project's images are removed and its next build uses no layer cache;
 *   a preparation already in flight then is not used: its caller prepares again (a generation count).
 * - Containers carry the label `computalot.owner=<this work dir>`; leftovers of a crashed worker are
 *   removed before the first preparation.
 */
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { extractTarball } from '../../tarball/extract.js';
import type { NormalizedManifest } from '../../protocol/manifest.js';
import { DEFAULT_KILL_GRACE_MS, RuntimeError, type AttemptInput, type ColdStartTimings, type Prepared, type PrepareInput, type RunningAttempt, type Runtime } from '../port.js';
import { failed, safely } from '../process-attempt.js';
import { prepareDataSources } from './data-sources.js';
import { helperBinary } from './helper-binary.js';
import { builtImagesFile, cacheDir, ioDir, sourceDir } from './host-dirs.js';
import { buildImage, imageExists, imageName, removeProjectImages, RMI_KEEPS_PARENTS } from './image-build.js';
import { OciAttempt, type SandboxLease } from './oci-attempt.js';
import { DEFAULT_ENGINE, podman, type EngineOptions } from './podman.js';
import { Sandbox, type Mount } from './sandbox.js';
import { ServiceGroup } from './services.js';
import { runValidation, type CheckResult } from './validate.js';

export interface OciRuntimeOptions {
  engine?: Partial<EngineOptions>;
  /** COMPUTALOT_ALLOW_RUNC: `runtime.sandbox: "runc"` is refused without it. */
  allowRunc?: boolean;
  /** COMPUTALOT_WARM_IDLE_S (default 600): idle warm runtimes are dropped after this. */
  warmIdleS?: number;
  /** Below this much free disk in the work dir, idle runtimes are dropped, least recently used first. */
  minFreeDiskMb?: number;
  killGraceMs?: number;
  progressPollMs?: number;
  /** COMPUTALOT_BUILD_NETWORK: podman build's --network (default "none"). */
  buildNetwork?: string;
  /** Tasks one sandbox may run at once (the worker's slots), for the sandbox-wide limit backstops. */
  slots?: number;
  /** COMPUTALOT_BUILD_TIMEOUT_S: a build (or a data source download) running longer fails preparation. */
  buildTimeoutS?: number;
  /** The largest data source a worker downloads. */
  maxDataSourceBytes?: number;
}

const DEFAULT_BUILD_TIMEOUT_S = 1_800;
const DEFAULT_MAX_DATA_SOURCE_BYTES = 16 * 1024 ** 3;

const DISK_DROP_GRACE_MS = 5_000;

export type DropListener = (projectId: string, contentHash: string, reason: string) => void;

interface Env {
  key: string;
  projectId: string;
  contentHash: string;
  manifest: NormalizedManifest;
  image: string;
  workDir: string;
  mounts: Mount[];
  sandbox: Sandbox | null;
  services: ServiceGroup | null;
  validation: CheckResult[];
  lastUsed: number;
  running: number;
  dropped: boolean;
  stopped?: Promise<void>;
  /** The project's invalidation count when this runtime's preparation began. */
  generation: number;
}

interface Built {
  env: Env;
  timings: ColdStartTimings;
}

/** The whole-sandbox limits: each task's own limit times the tasks it may run at once, plus the helper. */
function sandboxLimits(manifest: NormalizedManifest, slots: number): { memoryMb: number | null; cpus: number | null; pids: number | null } {
  const r = manifest.resources ?? {};
  return {
    memoryMb: r.memory_mb ? r.memory_mb * slots + 256 : null,
    cpus: r.cpu ? Math.min(r.cpu * slots, cpus().length) : null,
    pids: r.pids ? r.pids * slots + 64 : null,
  };
}

export class OciRuntime implements Runtime {
  readonly kind = 'oci' as const;
  private readonly engine: EngineOptions;
  private readonly pending = new Map<string, Promise<Built>>();
  private readonly warm = new Map<string, Env>();
  private readonly noCache = new Set<string>();
  private readonly generations = new Map<string, number>();
  /** Aborted by close(): builds and downloads in flight stop rather than hold the shutdown. */
  private readonly closing = new AbortController();
  private readonly attempts = new Set<RunningAttempt>();
  private readonly listeners = new Set<DropListener>();
  private readonly owner = new Map<string, Promise<void>>();
  private sweeper: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly options: OciRuntimeOptions = {}) {
    this.engine = { ...DEFAULT_ENGINE, ...options.engine };
    const idleS = options.warmIdleS ?? 600;
    // A sweep that fails (the work dir removed under it at shutdown, podman gone) is tried again next tick;
    // a rejection must not escape as an unhandled one.
    this.sweeper = setInterval(() => void this.sweep().catch(() => undefined), Math.max(1_000, Math.min(5_000, (idleS * 1000) / 2)));
    this.sweeper.unref();
  }

  describe(): Record<string, unknown> {
    return { kind: 'oci', sandboxes: this.options.allowRunc ? ['gvisor', 'runc'] : ['gvisor'], reuse: ['sandbox', 'none'] };
  }

  private generationOf(projectId: string): number {
    return this.generations.get(projectId) ?? 0;
  }

  onDropped(listener: DropListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  isLive(prepared: Prepared): boolean {
    return usable(this.warm.get(prepared.key));
  }

  async prepare(input: PrepareInput): Promise<Prepared> {
    if (this.closed) throw new RuntimeError('runtime_closed', 'The worker is shutting down.', 'fetch');
    const key = `${input.projectId}|${input.contentHash}`;
    const existing = this.warm.get(key);
    if (existing && usable(existing)) {
      existing.lastUsed = Date.now();
      return this.prepared(existing, { fetch_ms: 0, build_ms: 0, init_ms: 0, sandbox_ms: 0 }, false);
    }
    let pending = this.pending.get(key);
    const mine = !pending;
    if (!pending) {
      pending = this.build(key, input);
      this.pending.set(key, pending);
      void pending.then(({ env }) => {
        // Invalidated or shut down while it was prepared: it must not serve tasks (nor keep running).
        if (this.closed || env.generation !== this.generationOf(env.projectId)) void this.stopEnv(env);
        else this.warm.set(key, env);
      }, () => undefined).finally(() => this.pending.delete(key));
    }
    const { env, timings } = await pending;
    if (this.closed) throw new RuntimeError('runtime_closed', 'The worker is shutting down.', 'fetch');
    // The project was invalidated meanwhile: prepare again (the next build skips the layer cache).
    if (env.generation !== this.generationOf(input.projectId)) {
      if (this.pending.get(key) === pending) this.pending.delete(key);
      return this.prepare(input);
    }
    return this.prepared(env, mine ? timings : { fetch_ms: 0, build_ms: 0, init_ms: 0, sandbox_ms: 0 }, mine);
  }

  private prepared(env: Env, timings: ColdStartTimings, cold: boolean): Prepared {
    const reuse = env.manifest.runtime.reuse;
    return {
      kind: 'oci', key: env.key, projectId: env.projectId, contentHash: env.contentHash, timings, cold,
      workdir: env.manifest.runtime.workdir, manifestEnv: { ...env.manifest.env }, validation: env.validation,
      warnings: reuse === 'none' ? ['runtime.reuse is "none": every task starts a fresh sandbox.'] : [],
    };
  }

  /** Removes containers a crashed worker with this work dir left behind (once per work dir). */
  private cleanupLeftovers(workDir: string): Promise<void> {
    let done = this.owner.get(workDir);
    if (!done) {
      done = (async () => {
        const listed = await podman(this.engine, ['ps', '-aq', '--filter', `label=computalot.owner=${ownerTag(workDir)}`]);
        const ids = listed.stdout.split('\n').map((s) => s.trim()).filter(Boolean);
        if (ids.length > 0) await podman(this.engine, ['rm', '-f', '--time', '0', ...ids]);
      })();
      this.owner.set(workDir, done);
    }
    return done;
  }

  private async build(key: string, input: PrepareInput): Promise<Built> {
    const { manifest } = input;
    const timings: ColdStartTimings = { fetch_ms: 0, build_ms: 0, init_ms: 0, sandbox_ms: 0 };
    if (manifest.runtime.sandbox === 'runc' && !this.options.allowRunc) {
      throw new RuntimeError('sandbox_not_allowed', 'runtime.sandbox is "runc", which this worker does not allow (COMPUTALOT_ALLOW_RUNC=1 allows it); use "gvisor".', 'fetch');
    }
    await this.cleanupLeftovers(input.workDir);
    // fetch: the revision as build context, the data sources
    safely(input.onPhase, 'fetch');
    let t = performance.now();
    const generation = this.generationOf(input.projectId);
    const source = sourceDir(input.workDir, input.contentHash, randomBytes(4).toString('hex'));
    const image = imageName(input.projectId, input.contentHash);
    const noCache = this.noCache.has(input.projectId);
    const needBuild = noCache || !(await imageExists(this.engine, image));
    let mounts: Mount[];
    try {
      if (needBuild) {
        await mkdir(source, { recursive: true });
        await extractTarball(input.tarballPath, source);
      }
      const limitS = this.options.buildTimeoutS ?? DEFAULT_BUILD_TIMEOUT_S;
      mounts = await prepareDataSources(input.workDir, manifest.data_sources, (text) => safely(input.onLog, text),
        AbortSignal.any([input.signal, this.closing.signal, AbortSignal.timeout(limitS * 1000)]), this.options.maxDataSourceBytes ?? DEFAULT_MAX_DATA_SOURCE_BYTES);
    } catch (error) {
      await rm(source, { recursive: true, force: true });
      if (error instanceof RuntimeError) throw error;
      throw new RuntimeError('revision_unpack_failed', `Could not unpack revision ${input.contentHash}: ${(error as Error).message}`, 'fetch');
    }
    timings.fetch_ms = Math.round(performance.now() - t);
    // build
    safely(input.onPhase, 'build');
    t = performance.now();
    try {
      if (needBuild) {
        safely(input.onLog, `Building ${image}${noCache ? ' without the layer cache (invalidated)' : ''}\n`);
        const limitS = this.options.buildTimeoutS ?? DEFAULT_BUILD_TIMEOUT_S;
        const signal = AbortSignal.any([input.signal, this.closing.signal, AbortSignal.timeout(limitS * 1000)]);
        await buildImage({
          engine: this.engine, projectId: input.projectId, contentHash: input.contentHash, root: source, build: manifest.build,
          noCache, network: this.options.buildNetwork ?? 'none', signal, timeoutS: limitS,
          onStep: (info) => safely(input.onPhase, 'build', info), onLog: (text) => safely(input.onLog, text),
        });
        if (this.generationOf(input.projectId) === generation) this.noCache.delete(input.projectId);
        await appendFile(builtImagesFile(input.workDir), `${image}\n`);
      } else {
        safely(input.onLog, `Image ${image} is already built on this worker.\n`);
      }
    } finally {
      await rm(source, { recursive: true, force: true });
    }
    timings.build_ms = Math.round(performance.now() - t);
    for (const cache of manifest.cache_mounts) {
      const host = cacheDir(input.workDir, input.projectId, cache.name);
      await mkdir(host, { recursive: true });
      mounts.push({ host, container: cache.path, readOnly: false });
    }
    const env: Env = {
      key, projectId: input.projectId, contentHash: input.contentHash, manifest, image, workDir: input.workDir, mounts,
      sandbox: null, services: null, validation: [], lastUsed: Date.now(), running: 0, dropped: false, generation,
    };
    // sandbox, validate, init, services
    safely(input.onPhase, 'validate', { message: 'starting the sandbox' });
    t = performance.now();
    let sandbox: Sandbox;
    try {
      sandbox = await this.startSandbox(env);
    } catch (error) {
      throw new RuntimeError('sandbox_start_failed', `The sandbox did not start: ${(error as Error).message}`, 'validate');
    }
    timings.sandbox_ms = Math.round(performance.now() - t);
    t = performance.now();
    try {
      const base = { ...manifest.env };
      env.validation = await runValidation(sandbox, manifest.validation, manifest.runtime.workdir, base, (text) => safely(input.onLog, text));
      const failedCheck = env.validation.find((c) => !c.ok);
      if (failedCheck) {
        throw new RuntimeError('validation_failed', `Validation check "${failedCheck.check}" failed: ${failedCheck.message}`, 'validate', env.validation);
      }
      env.services = await this.bringUp(sandbox, manifest, input);
    } catch (error) {
      await sandbox.stop();
      throw error;
    }
    timings.init_ms = Math.round(performance.now() - t);
    if (manifest.runtime.reuse === 'none') {
      // Proven to start; every task gets its own fresh sandbox from now on.
      env.services?.stop();
      env.services = null;
      await sandbox.stop();
    } else {
      env.sandbox = sandbox;
      void sandbox.ended.then((reason) => {
        if (!env.dropped && !this.closed) this.drop(env, `the sandbox stopped unexpectedly: ${reason}`);
      });
    }
    return { env, timings };
  }

  private startSandbox(env: Env): Promise<Sandbox> {
    const name = `computalot-${ownerTag(env.workDir)}-${env.contentHash.replace(/^sha256:/, '').slice(0, 12)}-${randomBytes(3).toString('hex')}`;
    return helperBinary(env.workDir).then((helperPath) => Sandbox.start({
      engine: this.engine, name, image: env.image, kind: env.manifest.runtime.sandbox, helperPath,
      ioDir: ioDir(env.workDir, name), workdir: env.manifest.runtime.workdir, mounts: env.mounts,
      ...sandboxLimits(env.manifest, this.options.slots ?? 1),
      labels: { 'computalot.owner': ownerTag(env.workDir), 'computalot.project': env.projectId },
    }));
  }

  /** init commands, then project-scoped services; throws RuntimeError with the phase that failed. */
  private async bringUp(sandbox: Sandbox, manifest: NormalizedManifest, log: { onPhase: PrepareInput['onPhase']; onLog: PrepareInput['onLog'] }): Promise<ServiceGroup | null> {
    const workdir = manifest.runtime.workdir;
    if (manifest.runtime.init.commands.length > 0) safely(log.onPhase, 'init');
    for (const command of manifest.runtime.init.commands) {
      safely(log.onLog, `init ${command.label}: ${JSON.stringify(command.command)}\n`);
      const cwd = command.cwd ? (command.cwd.startsWith('/') ? command.cwd : `${workdir.replace(/\/$/, '')}/${command.cwd}`) : workdir;
      const r = await sandbox.exec(command.command, { cwd, env: { ...manifest.env, ...command.env }, timeoutMs: 30 * 60_000, onOutput: (text) => safely(log.onLog, text) });
      if (r.code !== 0) {
        const how = r.lost ?? (r.errno !== null ? `could not start (errno ${r.errno})` : r.timedOut ? 'timed out after 30 min' : `exited with ${r.code ?? `signal ${r.signal}`}`);
        throw new RuntimeError('init_failed', `init command "${command.label}" ${how}; see log_tail in /status/details.`, 'init');
      }
    }
    const projectServices = manifest.runtime.services.filter((s) => s.scope === 'project');
    if (projectServices.length === 0) return null;
    safely(log.onPhase, 'services');
    const services = new ServiceGroup(sandbox, projectServices, { workdir, env: { ...manifest.env }, onLog: (text) => safely(log.onLog, text) });
    try {
      await services.start();
    } catch (error) {
      services.stop();
      throw error;
    }
    return services;
  }

  run(input: AttemptInput): RunningAttempt {
    const env = this.closed ? undefined : this.warm.get(input.prepared.key);
    if (!env || env.dropped) {
      const message = this.closed
        ? 'The oci runtime is shutting down; the attempt was not started.'
        : `Revision ${input.prepared.contentHash} is not prepared on this worker (dropped or never prepared here); prepare it again.`;
      return { outcome: Promise.resolve(failed('runtime_not_prepared', message)), cancel: () => undefined };
    }
    env.running += 1;
    env.lastUsed = Date.now();
    const attempt: RunningAttempt = new OciAttempt(input, {
      killGraceMs: this.options.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
      progressPollMs: this.options.progressPollMs ?? 100,
      manifest: env.manifest,
      lease: () => this.lease(env),
    });
    this.attempts.add(attempt);
    void attempt.outcome.finally(() => {
      this.attempts.delete(attempt);
      env.running -= 1;
      env.lastUsed = Date.now();
      if (env.dropped && env.running === 0) void this.stopEnv(env);
    });
    return attempt;
  }

  private async lease(env: Env): Promise<SandboxLease> {
    if (env.manifest.runtime.reuse !== 'none') {
      if (!env.sandbox || !env.sandbox.alive) throw new Error(`The sandbox of ${env.contentHash} is gone (${env.sandbox ? 'it stopped' : 'never started'}); the task will be prepared again.`);
      return { sandbox: env.sandbox, release: async () => undefined };
    }
    const sandbox = await this.startSandbox(env);
    let services: ServiceGroup | null = null;
    try {
      services = await this.bringUp(sandbox, env.manifest, { onPhase: () => undefined, onLog: () => undefined });
    } catch (error) {
      await sandbox.stop();
      throw error;
    }
    return { sandbox, release: async () => { services?.stop(); await sandbox.stop(); } };
  }

  private drop(env: Env, reason: string): void {
    if (env.dropped) return;
    env.dropped = true;
    if (this.warm.get(env.key) === env) this.warm.delete(env.key);
    for (const listener of this.listeners) safely(listener, env.projectId, env.contentHash, reason);
    if (env.running === 0) void this.stopEnv(env);
  }

  /** Stops the runtime's services and sandbox; every caller waits for the same stop. */
  private stopEnv(env: Env): Promise<void> {
    env.stopped ??= (async () => {
      env.services?.stop();
      env.services = null;
      await env.sandbox?.stop();
      env.sandbox = null;
    })();
    return env.stopped;
  }

  async discard(prepared: Prepared): Promise<void> {
    const env = this.warm.get(prepared.key);
    if (env) this.drop(env, 'discarded');
  }

  /** SPEC §5 invalidate: drops the project's runtimes, removes its images, and skips the layer cache next. */
  async invalidate(projectId: string): Promise<void> {
    this.generations.set(projectId, this.generationOf(projectId) + 1);
    this.noCache.add(projectId);
    const envs = [...this.warm.values()].filter((e) => e.projectId === projectId);
    for (const env of envs) this.drop(env, 'invalidated');
    await Promise.all(envs.filter((e) => e.running === 0).map((e) => this.stopEnv(e)));
    await removeProjectImages(this.engine, projectId);
  }

  /** Idle runtimes past COMPUTALOT_WARM_IDLE_S; then, while the disk is short, what can be rebuilt. */
  private async sweep(): Promise<void> {
    const idleMs = (this.options.warmIdleS ?? 600) * 1000;
    const now = Date.now();
    for (const env of [...this.warm.values()]) {
      if (env.running === 0 && now - env.lastUsed >= idleMs) this.drop(env, `idle for ${Math.round((now - env.lastUsed) / 1000)} s`);
    }
    for (const workDir of this.owner.keys()) await this.relieveDisk(workDir, now);
  }

  private async diskShort(workDir: string): Promise<boolean> {
    const fs = await statfs(workDir).catch(() => null);
    return fs !== null && fs.bavail * fs.bsize < (this.options.minFreeDiskMb ?? 2048) * 1024 * 1024;
  }

  /**
   * Low disk (COMPUTALOT_MIN_FREE_DISK_MB): first the images this worker built that no warm runtime or
   * preparation uses (older revisions), then idle runtimes with their images, least recently used first.
   * Everything removed is rebuilt on demand. Not `podman image prune`, and `rmi` keeps parents: either
   * could take the intermediate layers of a build running meanwhile (the build cache is the operator's to
   * prune, docs/sandbox.md).
   */
  private async relieveDisk(workDir: string, now: number): Promise<void> {
    if (!(await this.diskShort(workDir))) return;
    const inUse = new Set([...this.warm.values()].map((e) => e.image));
    for (const key of this.pending.keys()) {
      const [projectId, contentHash] = key.split('|');
      inUse.add(imageName(projectId!, contentHash!));
    }
    // Only images this worker built (its list in the work dir): other workers may share podman's storage.
    const kept: string[] = [];
    for (const image of await readBuiltImages(workDir)) {
      if (inUse.has(image) || (await podman(this.engine, ['rmi', ...RMI_KEEPS_PARENTS, image])).code !== 0 && await imageExists(this.engine, image)) kept.push(image);
    }
    await writeFile(builtImagesFile(workDir), kept.map((i) => `${i}\n`).join(''));
    // Not one used in the last few seconds: it may be between its preparation and its first task.
    const idle = [...this.warm.values()].filter((e) => e.running === 0 && now - e.lastUsed >= DISK_DROP_GRACE_MS).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const env of idle) {
      if (!(await this.diskShort(workDir))) break;
      this.drop(env, 'the disk is nearly full');
      await this.stopEnv(env);
      await podman(this.engine, ['rmi', ...RMI_KEEPS_PARENTS, env.image]);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    if (this.sweeper) clearInterval(this.sweeper);
    const running = [...this.attempts];
    for (const attempt of running) attempt.cancel();
    await Promise.all(running.map((a) => a.outcome));
    // Preparations in flight end soon (builds were aborted); each stops its own sandbox when it sees closed.
    await Promise.race([Promise.allSettled([...this.pending.values()]), new Promise((r) => setTimeout(r, 10_000).unref())]);
    const envs = [...this.warm.values()];
    this.warm.clear();
    await Promise.all(envs.map((e) => { e.dropped = true; return this.stopEnv(e); }));
  }
}

/** A warm runtime that can take tasks: not dropped, and its sandbox (reuse "sandbox") still running. */
function usable(env: Env | undefined): boolean {
  return !!env && !env.dropped && (env.manifest.runtime.reuse === 'none' || (env.sandbox !== null && env.sandbox.alive));
}

function ownerTag(workDir: string): string {
  return createHash('sha256').update(workDir).digest('hex').slice(0, 8);
}

async function readBuiltImages(workDir: string): Promise<string[]> {
  const text = await readFile(builtImagesFile(workDir), 'utf8').catch(() => '');
  return [...new Set(text.split('\n').filter(Boolean))];
}
