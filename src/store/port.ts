/**
 * The Store port: every read and write the rest of the server makes, in domain verbs. Adapters (SQLite,
 * PostgreSQL, through one Kysely implementation) apply each verb in one transaction together with the
 * events it causes. Guards are in the SQL (compare-and-set), never read-then-write in the caller.
 */
import type { AppError } from '../core/errors.js';
import type { FileEntry } from '../core/content-hash.js';
import type { CreateOutcome, NewJob } from './jobs-create.js';
import type { EndResult } from './jobs-complete.js';
import type { HeldLease, LiveUpdate } from './jobs-control.js';
import type { LeaseRequest, StartReport } from './jobs-lease.js';
import type { RuntimeUpdate, WorkerInfo } from './workers-store.js';
import type {
  Account, ApiKey, AttemptRecord, AttemptReport, JobRecord, KvEntry, LeasedTask, Page, PageQuery, Project, Quotas,
  ReadinessSnapshot, Revision, Role, RuntimeTarget, StoredEvent, TaskCounts, TaskRecord, Worker, WorkerToken,
} from '../core/model.js';

/**
 * What createJobs did: an outcome per job, and per direct request the tasks it leased. `stale`: a project
 * changed since jobs were planned from it (NewJob.project_env); nothing was created (`outcomes` is empty),
 * though the direct requests may still have leased older work.
 */
export interface CreatedJobs { outcomes: Array<CreateOutcome | AppError>; leased: LeasedTask[][]; stale?: true }

export type { CreateOutcome, NewJob, EndResult, HeldLease, LiveUpdate, LeaseRequest, StartReport, RuntimeUpdate, WorkerInfo };

/** Everything a worker reports between two flushes, applied in one transaction. */
export interface WorkerReports { started: StartReport[]; live: LiveUpdate[]; ended: AttemptReport[] }

export * from '../core/model.js';

export interface NewRevision {
  content_hash: string; tarball_sha256: string; size_bytes: number; files: FileEntry[];
  manifest: Record<string, unknown>; manifest_warnings: string[];
}

export type PublishOutcome =
  | { unchanged: true; revision: Revision }
  | { unchanged: false; revision: Revision; previous: { revision: Revision; files: FileEntry[] } | null };


export interface KvPutInput {
  project: Project; key: string; value: string; ifMatch: number | null; ifNoneMatch: boolean;
  expiresAt: string | null; maxKeys: number;
}

export interface Store {
  readonly dialect: 'sqlite' | 'postgres';
  close(): Promise<void>;

  // accounts and keys (SPEC §2, §11)
  createAccount(input: { name: string; quotas: Quotas }): Promise<Account>;
  getAccount(id: string): Promise<Account | null>;
  getAccountByName(name: string): Promise<Account | null>;
  listAccounts(page: PageQuery): Promise<Page<Account>>;
  setQuotas(accountId: string, quotas: Quotas): Promise<Account | null>;
  createApiKey(input: { accountId: string; role: Role; name: string; keyHash: string; keyPrefix: string }): Promise<ApiKey>;
  findApiKeyByHash(hash: string): Promise<ApiKey | null>;
  listApiKeys(accountId: string): Promise<ApiKey[]>;
  revokeApiKey(id: string): Promise<boolean>;
  countActiveAdminKeys(): Promise<number>;
  createWorkerToken(input: { name: string; tokenHash: string }): Promise<WorkerToken>;
  findWorkerTokenByHash(hash: string): Promise<WorkerToken | null>;
  revokeWorkerToken(id: string): Promise<boolean>;
  listWorkers(): Promise<Worker[]>;
  usage(accountId: string): Promise<{ projects: number; stored_bytes: number }>;

  // projects and revisions (SPEC §3)
  createProject(accountId: string, input: { name: string; remote_dir: string | null; description: string | null; env: Record<string, string> }): Promise<Project>;
  getProject(accountId: string, name: string): Promise<Project | null>;
  /** The account's projects among `names` (those that exist), in one read. */
  getProjects(accountId: string, names: string[]): Promise<Project[]>;
  listProjects(accountId: string, page: PageQuery): Promise<Page<Project>>;
  updateProject(project: Project, patch: { remote_dir?: string | null; description?: string | null; env?: Record<string, string> }): Promise<Project>;
  deleteProject(project: Project): Promise<{ tarballs: string[] }>;
  tryLockPush(projectId: string, holder: string, ttlSeconds: number): Promise<boolean>;
  renewPushLock(projectId: string, holder: string, ttlSeconds: number): Promise<void>;
  releasePushLock(projectId: string, holder: string): Promise<void>;
  publishRevision(project: Project, input: NewRevision, keepNewest: number): Promise<PublishOutcome & { releasedTarballs: string[] }>;
  getRevision(id: string): Promise<Revision | null>;
  listRevisions(projectId: string, page: PageQuery): Promise<Page<Revision>>;

  // readiness (SPEC §5)
  readinessSnapshot(project: Project, contentHash: string | null): Promise<ReadinessSnapshot>;
  requestInit(project: Project, contentHash: string, workerIds: string[]): Promise<void>;
  pendingInits(workerId: string): Promise<RuntimeTarget[]>;
  /** What a worker preparing this revision says it is doing ("preparing runtime on node-1: build step 2/4"). */
  preparingReason(projectId: string, contentHash: string): Promise<string | null>;
  /** Runtimes of this worker that an invalidate marked stale and the worker has not discarded yet. */
  pendingInvalidations(workerId: string): Promise<RuntimeTarget[]>;
  invalidate(project: Project): Promise<string>;
  cancelQueued(project: Project): Promise<{ cancelled_jobs: number; cancelled_tasks: number }>;

  // KV (SPEC §9)
  kvGet(projectId: string, key: string): Promise<KvEntry | null>;
  kvPut(input: KvPutInput): Promise<KvEntry>;
  kvDelete(project: Project, key: string): Promise<boolean>;
  kvList(projectId: string, prefix: string, page: PageQuery): Promise<Page<KvEntry>>;
  kvSweepExpired(): Promise<number>;

  // jobs (SPEC §6)
  /** Creates jobs in one transaction; each `direct` request then leases for its worker in the same one. */
  createJobs(jobs: NewJob[], direct?: LeaseRequest[]): Promise<CreatedJobs>;
  getJob(accountId: string, id: string): Promise<(JobRecord & { counts: TaskCounts }) | null>;
  listJobs(accountId: string, filter: { projectId?: string; status?: string }, page: PageQuery): Promise<Page<JobRecord & { counts: TaskCounts }>>;
  listTasks(jobId: string, page: PageQuery): Promise<Page<TaskRecord & { attempts: AttemptRecord[] }>>;
  resultRows(jobId: string): Promise<TaskRecord[]>;
  /** The account's queued tasks (the queued_tasks quota). */
  queuedTaskCount(accountId: string): Promise<number>;
  /** The account's tasks holding a lease (the running_tasks quota). */
  leasedTaskCount(accountId: string): Promise<number>;
  cancelJob(jobId: string, reason: string): Promise<{ cancelled_tasks: number; cancelling_tasks: number }>;

  // workers and leases (SPEC §8)
  registerWorker(info: WorkerInfo): Promise<Worker>;
  setWorkerStatus(workerId: string, status: 'online' | 'draining' | 'offline'): Promise<void>;
  leaseTasks(req: LeaseRequest): Promise<LeasedTask[]>;
  heartbeat(workerId: string, held: HeldLease[]): Promise<{ cancel: string[]; lost: string[] }>;
  applyWorkerReports(reports: WorkerReports): Promise<EndResult[]>;
  /** Applies the reports, then leases for the worker, in one transaction (a worker whose attempts ended). */
  reportAndLease(reports: WorkerReports, lease: LeaseRequest): Promise<{ ended: EndResult[]; leased: LeasedTask[] }>;
  setRuntimeState(update: RuntimeUpdate, node: string): Promise<void>;
  /** The scheduler's sweep: expired leases, queue timeouts, silent workers. */
  sweep(now: string): Promise<{ expired: number; queue_timeouts: number; offline: number }>;

  // events (SPEC §10)
  readEvents(filter: { projectId?: string; jobId?: string }, afterId: number, limit: number): Promise<StoredEvent[]>;
  latestEventId(): Promise<number>;
  /**
   * The highest id of a stored event matching the filter, committed but maybe above the high-water mark
   * (0 for none): how far a stream of a finished job still has to go.
   */
  newestEventId(filter: { projectId?: string; jobId?: string }): Promise<number>;
  eventsPrunedThrough(): Promise<number>;
  pruneEvents(olderThan: string): Promise<number>;
  subscribe(listener: (latestId: number) => void): () => void;
  /** Called when tasks may have become leasable (new jobs, requeued attempts, a reduce), in any process. */
  onWork(listener: () => void): () => void;
}
