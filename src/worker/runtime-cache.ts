/**
 * The worker's prepared runtimes, one per (project, content hash), and the readiness reports about them (SPEC §5,
 * §8): the first task of a revision on this worker prepares it (initializing, with its phase), then
 * `warm` or `failed` with the phase, error and a redacted log tail. Later tasks reuse the warm runtime.
 */
import type { RuntimeTarget, Worker } from '../core/model.js';
import type { Prepared, Runtime } from '../runtime/port.js';
import type { WorkerClient } from './client.js';
import { redactLog } from './redact.js';

const LOG_TAIL_BYTES = 4 * 1024;

/**
 * A prepared runtime belongs to one project: two projects that push identical tarballs share a content
 * hash, and must still never share a sandbox (its cache mounts, its tasks' files and environments).
 */
function runtimeKey(target: Pick<RuntimeTarget, 'project_id' | 'content_hash'>): string {
  return `${target.project_id}|${target.content_hash}`;
}

export class RuntimeCache {
  worker: Worker | null = null;
  private readonly prepared = new Map<string, Promise<Prepared>>();

  /** Targets seen per runtime key, to report drops against the right project. */
  private readonly targets = new Map<string, RuntimeTarget>();
  private readonly unsubscribe: (() => void) | null;

  constructor(private readonly client: WorkerClient, private readonly runtime: Runtime, private readonly workDir: string) {
    // A runtime dropped on its own (idle, low disk, the sandbox died, invalidated) is no longer warm here.
    this.unsubscribe = runtime.onDropped?.((projectId, contentHash, reason) => {
      const key = runtimeKey({ project_id: projectId, content_hash: contentHash });
      const target = this.targets.get(key);
      if (!target || !this.prepared.has(key)) return;
      this.prepared.delete(key);
      void this.report(target, 'stale', { phase: null, status_reason: `dropped: ${reason}` });
    }) ?? null;
  }

  close(): void {
    this.unsubscribe?.();
  }

  private report(target: RuntimeTarget, state: string, extra: Record<string, unknown>): Promise<void> {
    const worker = this.worker!;
    return this.client.setRuntimeState({
      worker_id: worker.id, project_id: target.project_id, account_id: target.account_id, project: target.project,
      content_hash: target.content_hash, state, ...extra,
    } as Parameters<WorkerClient['setRuntimeState']>[0], worker.node).catch(() => undefined);
  }

  /** After an invalidate: drops this worker's runtimes of the project (the runtime removes its images). */
  async invalidate(targets: RuntimeTarget[]): Promise<void> {
    const projects = new Map(targets.map((t) => [t.project_id, t]));
    for (const projectId of projects.keys()) {
      for (const [key, target] of this.targets) if (target.project_id === projectId) this.prepared.delete(key);
      await this.runtime.invalidate?.(projectId);
    }
    for (const target of targets) await this.report(target, 'stale', { phase: null, status_reason: 'invalidated; discarded on this worker' });
  }

  /** Whether this worker has (or is making) a runtime for the hash: /init need not prepare it again. */
  has(target: Pick<RuntimeTarget, 'project_id' | 'content_hash'>): boolean {
    return this.prepared.has(runtimeKey(target));
  }

  prepare(task: RuntimeTarget): Promise<Prepared> {
    const key = runtimeKey(task);
    let entry = this.prepared.get(key);
    this.targets.set(key, task);
    if (!entry) {
      entry = this.prepareFresh(task);
      this.prepared.set(key, entry);
      // A failed preparation is not cached: the next task of the revision tries again.
      entry.catch(() => this.prepared.delete(key));
      return entry;
    }
    // Warm: later tasks report no cold start; a runtime that died or was dropped is prepared again.
    return entry.then((p) => {
      if (this.runtime.isLive && !this.runtime.isLive(p)) {
        if (this.prepared.get(key) === entry) this.prepared.delete(key);
        return this.prepare(task);
      }
      return { ...p, cold: false };
    });
  }

  private async prepareFresh(task: RuntimeTarget): Promise<Prepared> {
    const worker = this.worker!;
    const base = { worker_id: worker.id, project_id: task.project_id, account_id: task.account_id, project: task.project, content_hash: task.content_hash };
    const startedAt = new Date().toISOString();
    let log = '';
    // Values that may be secret: the project's env now, the manifest's env and build args once known.
    let secrets: Record<string, string> = { ...task.env };
    let phase: string = 'fetch';
    // Reports go out one after another: a late "build step 3/7" must never land after "warm".
    let chain: Promise<void> = Promise.resolve();
    const report = (state: string, extra: Record<string, unknown> = {}): Promise<void> => {
      const update = { ...base, state, phase, started_at: startedAt, log_tail: redactLog(log, secrets).slice(-LOG_TAIL_BYTES), ...extra };
      chain = chain.then(() => this.client.setRuntimeState(update, worker.node)).catch(() => undefined);
      return chain;
    };
    await report('initializing', { status_reason: `preparing on ${worker.node}` });
    const t0 = Date.now();
    try {
      const revision = await this.client.revision(task.revision_id);
      secrets = { ...secrets, ...revision.manifest.env, ...revision.manifest.build.args };
      const prepared = await this.runtime.prepare({
        projectId: task.project_id, contentHash: task.content_hash, tarballPath: revision.tarball_path,
        manifest: revision.manifest, workDir: this.workDir, signal: new AbortController().signal,
        onPhase: (p, info) => {
          phase = p;
          const detail = info?.step ? ` step ${info.step}/${info.steps}` : info?.message ? ` (${info.message})` : '';
          void report('initializing', { status_reason: `preparing runtime on ${worker.node}: ${p}${detail}` });
        },
        onLog: (chunk) => { log = (log + chunk).slice(-64 * 1024); },
      });
      await report('warm', {
        phase: null, finished_at: new Date().toISOString(), duration_ms: Date.now() - t0, status_reason: prepared.warnings.join(' ') || null,
        validation: prepared.validation ?? [],
      });
      return prepared;
    } catch (err) {
      const e = err as { code?: string; message?: string; validation?: unknown[] };
      await report('failed', {
        validation: e.validation ?? [],
        finished_at: new Date().toISOString(), duration_ms: Date.now() - t0,
        error: { code: e.code ?? 'runtime_prepare_failed', message: redactLog(e.message ?? String(err), secrets) },
      });
      throw err;
    }
  }
}
