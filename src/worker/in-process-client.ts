/**
 * The in-process transport for embedded workers: calls the store directly and shares the server's data
 * dir (blobs, checkpoints, outputs). Wakes the worker on events that can bring work.
 */
import { mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { BlobStore } from '../store/blob-store.js';
import type { Store } from '../store/port.js';
import type { NormalizedManifest } from '../protocol/manifest.js';
import type { WorkerClient } from './client.js';

export function outputPath(dataDir: string, jobId: string, taskId: string, attempt: number): string {
  return join(dataDir, 'outputs', jobId, `${taskId}.${attempt}.log`);
}

export class InProcessClient implements WorkerClient {
  constructor(private readonly store: Store, private readonly blobs: BlobStore, private readonly dataDir: string) {}

  register: WorkerClient['register'] = (info) => this.store.registerWorker(info);
  lease: WorkerClient['lease'] = (req) => this.store.leaseTasks(req);
  heartbeat: WorkerClient['heartbeat'] = (workerId, held) => this.store.heartbeat(workerId, held);
  report: WorkerClient['report'] = (reports) => this.store.applyWorkerReports(reports);
  reportAndLease: WorkerClient['reportAndLease'] = (reports, lease) => this.store.reportAndLease(reports, lease);
  setRuntimeState: WorkerClient['setRuntimeState'] = (update, node) => this.store.setRuntimeState(update, node);
  setStatus: WorkerClient['setStatus'] = (workerId, status) => this.store.setWorkerStatus(workerId, status);
  pendingInits: WorkerClient['pendingInits'] = (workerId) => this.store.pendingInits(workerId);
  pendingInvalidations: WorkerClient['pendingInvalidations'] = (workerId) => this.store.pendingInvalidations(workerId);

  async revision(revisionId: string) {
    const revision = await this.store.getRevision(revisionId);
    if (!revision) throw new Error(`revision ${revisionId} is gone`);
    return {
      content_hash: revision.content_hash,
      manifest: revision.manifest as unknown as NormalizedManifest,
      tarball_path: this.blobs.pathOf(revision.tarball_sha256),
    };
  }

  async checkpointDir(taskId: string): Promise<string> {
    const dir = join(this.dataDir, 'checkpoints', taskId);
    await mkdir(dir, { recursive: true });
    return dir;
  }

  async keepOutput(jobId: string, taskId: string, attempt: number, localPath: string): Promise<void> {
    const target = outputPath(this.dataDir, jobId, taskId, attempt);
    if (target === localPath) return;
    await mkdir(join(this.dataDir, 'outputs', jobId), { recursive: true });
    await rename(localPath, target);
  }

  onWork(listener: () => void): () => void {
    return this.store.onWork(listener);
  }
}
