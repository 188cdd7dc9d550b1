/**
 * The worker's prepared runtimes, one per content hash, and the readiness reports about them (SPEC §5,
 * §8): the first task of a revision on this worker prepares it (initializing, with its phase), then
 * `warm` or `failed` with the phase, error and a redacted log tail. Later tasks reuse the warm runtime.
 */
import type { RuntimeTarget, Worker } from '../core/model.js';
import type { Prepared, Runtime } from '../runtime/port.js';
import type { WorkerClient } from './client.js';
import { redactLog } from './redact.js';

const LOG_TAIL_BYTES = 4 * 1024;

export class RuntimeCache {
  worker: Worker | null = null;
  private readonly prepared = new Map<string, Promise<Prepared>>();

  constructor(private readonly client: WorkerClient, private readonly runtime: Runtime, private readonly workDir: string) {}

  /** Whether this worker has (or is making) a runtime for the hash: /init need not prepare it again. */
  has(contentHash: string): boolean {
    return this.prepared.has(contentHash);
  }

  prepare(task: RuntimeTarget): Promise<Prepared> {
    let entry = this.prepared.get(task.content_hash);
    if (!entry) {
      entry = this.prepareFresh(task);
      this.prepared.set(task.content_hash, entry);
      // A failed preparation is not cached: the next task of the revision tries again.
      entry.catch(() => this.prepared.delete(task.content_hash));
      return entry;
    }
    // Warm: later tasks report no cold start.
    return entry.then((p) => ({ ...p, cold: false }));
  }

  private async prepareFresh(task: RuntimeTarget): Promise<Prepared> {
    const worker = this.worker!;
    const base = { worker_id: worker.id, project_id: task.project_id, account_id: task.account_id, project: task.project, content_hash: task.content_hash };
    const startedAt = new Date().toISOString();
    let log = '';
    let phase: string = 'fetch';
    const report = (state: string, extra: Record<string, unknown> = {}) =>
      this.client.setRuntimeState({ ...base, state, phase, started_at: startedAt, log_tail: redactLog(log, task.env).slice(-LOG_TAIL_BYTES), ...extra }, worker.node)
        .catch(() => undefined);
    await report('initializing', { status_reason: `preparing on ${worker.node}` });
    const t0 = Date.now();
    try {
      const revision = await this.client.revision(task.revision_id);
      const prepared = await this.runtime.prepare({
        projectId: task.project_id, contentHash: task.content_hash, tarballPath: revision.tarball_path,
        manifest: revision.manifest, workDir: this.workDir, signal: new AbortController().signal,
        onPhase: (p) => { phase = p; void report('initializing', { status_reason: `preparing on ${worker.node}: ${p}` }); },
        onLog: (chunk) => { log = (log + chunk).slice(-64 * 1024); },
      });
      await report('warm', { phase: null, finished_at: new Date().toISOString(), duration_ms: Date.now() - t0, status_reason: prepared.warnings.join(' ') || null });
      return prepared;
    } catch (err) {
      const e = err as { code?: string; message?: string };
      await report('failed', {
        finished_at: new Date().toISOString(), duration_ms: Date.now() - t0,
        error: { code: e.code ?? 'runtime_prepare_failed', message: redactLog(e.message ?? String(err), task.env) },
      });
      throw err;
    }
  }
}
