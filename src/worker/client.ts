/**
 * What a worker needs from the server, as one interface with two transports: in-process for embedded
 * workers (in-process-client.ts) and HTTP for remote ones (later). Typed once, shared by both ends.
 * Every report names the task, the attempt and the lease token; the server refuses stale ones.
 */
import type { LeasedTask, RuntimeTarget, Worker } from '../core/model.js';
import type { NormalizedManifest } from '../protocol/manifest.js';
import type { EndResult, HeldLease, LeaseRequest, RuntimeUpdate, WorkerInfo, WorkerReports } from '../store/port.js';

export interface RevisionFiles {
  content_hash: string;
  manifest: NormalizedManifest;
  /** A local path of the revision tarball (embedded: the blob itself; remote: a downloaded copy). */
  tarball_path: string;
}

export interface WorkerClient {
  register(info: WorkerInfo): Promise<Worker>;
  lease(req: LeaseRequest): Promise<LeasedTask[]>;
  heartbeat(workerId: string, held: HeldLease[]): Promise<{ cancel: string[]; lost: string[] }>;
  report(reports: WorkerReports): Promise<EndResult[]>;
  /** Reports, then leases `lease.slots` more tasks, in one round trip (the slots ended attempts freed). */
  reportAndLease(reports: WorkerReports, lease: LeaseRequest): Promise<{ ended: EndResult[]; leased: LeasedTask[] }>;
  setRuntimeState(update: RuntimeUpdate, node: string): Promise<void>;
  setStatus(workerId: string, status: 'online' | 'draining' | 'offline'): Promise<void>;
  revision(revisionId: string): Promise<RevisionFiles>;
  /** A host folder for a task's checkpoint that the next attempt, on any worker, finds again. */
  checkpointDir(taskId: string): Promise<string>;
  /** Keeps an attempt's whole output (a local file the worker wrote) for GET /jobs/:id/output. */
  keepOutput(jobId: string, taskId: string, attempt: number, localPath: string): Promise<void>;
  /** Runtimes an /init asked this worker to prepare ahead of any job. */
  pendingInits(workerId: string): Promise<RuntimeTarget[]>;
  /** Runtimes an invalidate asked this worker to discard (with their images). */
  pendingInvalidations(workerId: string): Promise<RuntimeTarget[]>;
  /** Calls back when new work may be waiting (a job was created, a task was requeued). */
  onWork(listener: () => void): () => void;
}
