/**
 * Row shapes of every table, as Kysely sees them. Times are RFC 3339 text (they sort as text on both
 * databases); JSON columns are text holding JSON; booleans are 0/1 integers. Both dialects share them.
 */
import type { Generated } from 'kysely';

export interface AccountsTable { id: string; name: string; quotas: string; running_tasks_cap: number | null; created_at: string }
export interface ApiKeysTable {
  id: string; account_id: string; role: string; name: string; key_hash: string; key_prefix: string;
  created_at: string; revoked_at: string | null;
}
export interface WorkerTokensTable {
  id: string; name: string; token_hash: string; created_at: string; revoked_at: string | null;
}
export interface WorkersTable {
  id: string; node_number: number; token_id: string | null; embedded: number; profile: string;
  resources: string; runtime: string; slots: number; status: string; started_at: string; last_seen_at: string;
}
export interface ProjectsTable {
  id: string; account_id: string; name: string; remote_dir: string | null; description: string | null;
  env: string; created_at: string; updated_at: string; active_revision_id: string | null;
  invalidated_at: string | null;
}
export interface RevisionsTable {
  id: string; project_id: string; revision: number; content_hash: string; tarball_sha256: string;
  size_bytes: number; file_count: number; manifest: string; manifest_warnings: string; files: string;
  published_at: string; tarball_deleted_at: string | null;
}
export interface PushLocksTable { project_id: string; holder: string; expires_at: string }
export interface PreparedRuntimesTable {
  id: string; worker_id: string; project_id: string; content_hash: string; state: string;
  phase: string | null; status_reason: string | null; started_at: string | null; finished_at: string | null;
  duration_ms: number | null; error_code: string | null; error_message: string | null; log_tail: string;
  validation: string; init_requested_at: string | null; updated_at: string;
}
export interface JobsTable {
  id: string; account_id: string; project_id: string; revision_id: string; content_hash: string;
  type: string; status: string; status_reason: string | null; spec: string; tasks_total: number;
  created_at: string; started_at: string | null; finished_at: string | null;
  priority: number; timeout_s: number; queue_timeout_s: number | null; max_attempts: number; backoff_s: number;
  checkpoint: number; runner_command: string | null; env: string; meta: string; variant: string; profile: string;
  requirements: string; error: string | null; recommended_action: string | null; reduce: string | null;
  objective: string | null; tasks_open: number; request_hash: string | null;
}
export interface TasksTable {
  id: string; job_id: string; project_id: string; idx: number; status: string;
  status_reason: string | null; created_at: string; started_at: string | null; finished_at: string | null;
  account_id: string; kind: string; priority: number; profile: string; payload: string; item: string; runner_command: string | null;
  attempt: number; available_at: string; queue_deadline: string | null; worker_id: string | null;
  lease_token: string | null; lease_expires_at: string | null; cancel_requested: number; exit_code: number | null;
  error: string | null; output: string; output_tail: string; latest_progress: string | null; result: string | null;
  result_quality: number | null; result_warnings: string; duration_ms: number | null; cold_start: string | null;
  node: string | null; meta: string;
  min_cpu: number | null; min_memory_gb: number | null; min_storage_gb: number | null; min_gpu_count: number | null;
}
export interface AttemptsTable {
  task_id: string; attempt: number; job_id: string; worker_id: string; node: string; status: string;
  exit_code: number | null; error: string | null; started_at: string | null; finished_at: string | null;
}
export interface IdempotencyKeysTable {
  account_id: string; key: string; request_hash: string; job_id: string; created_at: string;
}
export interface KvTable {
  project_id: string; key: string; value: string; version: number; size_bytes: number;
  updated_at: string; expires_at: string | null;
}
export interface EventsTable {
  id: Generated<number>; account_id: string; project_id: string | null; job_id: string | null;
  type: string; data: string; created_at: string;
}
export interface MetaTable { key: string; value: string }

export interface Database {
  accounts: AccountsTable;
  api_keys: ApiKeysTable;
  worker_tokens: WorkerTokensTable;
  workers: WorkersTable;
  projects: ProjectsTable;
  revisions: RevisionsTable;
  push_locks: PushLocksTable;
  prepared_runtimes: PreparedRuntimesTable;
  jobs: JobsTable;
  tasks: TasksTable;
  attempts: AttemptsTable;
  idempotency_keys: IdempotencyKeysTable;
  kv: KvTable;
  events: EventsTable;
  meta: MetaTable;
}
