/**
 * The domain records every layer speaks in: what the store returns and core decides on. Plain data,
 * no behaviour; times are RFC 3339 strings.
 */
import type { RuntimeState } from './states.js';

export type Role = 'admin' | 'member' | 'viewer';
export const ROLES: readonly Role[] = ['admin', 'member', 'viewer'];

export interface Quotas {
  projects: number | null;
  stored_bytes: number | null;
  running_tasks: number | null;
  queued_tasks: number | null;
}

export interface Account { id: string; name: string; quotas: Quotas; created_at: string }
export interface ApiKey {
  id: string; account_id: string; role: Role; name: string; key_prefix: string;
  created_at: string; revoked_at: string | null;
}
export interface WorkerToken { id: string; name: string; created_at: string; revoked_at: string | null }

export interface Worker {
  id: string; node: string; embedded: boolean; profile: string; resources: Record<string, unknown>;
  runtime: Record<string, unknown>; slots: number; status: string; started_at: string; last_seen_at: string;
}

export interface Project {
  id: string; account_id: string; name: string; remote_dir: string | null; description: string | null;
  env: Record<string, string>; created_at: string; updated_at: string; active_revision_id: string | null;
  invalidated_at: string | null;
}

export interface Revision {
  id: string; project_id: string; revision: number; content_hash: string; tarball_sha256: string;
  size_bytes: number; file_count: number; manifest: Record<string, unknown>; manifest_warnings: string[];
  published_at: string; tarball_deleted_at: string | null;
}

export interface PreparedRuntime {
  id: string; worker_id: string; node: string; project_id: string; content_hash: string; state: RuntimeState;
  phase: string | null; status_reason: string | null; started_at: string | null; finished_at: string | null;
  duration_ms: number | null; error: { code: string; message: string } | null; log_tail: string;
  validation: Array<{ check: string; ok: boolean; message: string }>; init_requested_at: string | null;
}

export interface KvEntry { key: string; value: string; version: number; updated_at: string; expires_at: string | null }

export interface StoredEvent {
  id: number; account_id: string; project_id: string | null; job_id: string | null; type: string;
  data: Record<string, unknown>; created_at: string;
}

export interface Page<T> { items: T[]; next_cursor: string | null }
export interface PageQuery { limit: number; cursor: string | null }

export interface ReadinessSnapshot {
  workers: Worker[];
  runtimes: PreparedRuntime[];
  jobs: { queued: number; running: number };
}

/** A job as stored; counts are derived from its tasks. */
export interface JobRecord {
  id: string; account_id: string; project_id: string; project: string; revision_id: string; content_hash: string;
  type: string; status: string; status_reason: string | null; created_at: string; started_at: string | null;
  finished_at: string | null; timeout_s: number; queue_timeout_s: number | null; max_attempts: number;
  backoff_s: number; checkpoint: boolean; priority: number; runner_command: string[] | null;
  env: Record<string, string>; meta: unknown; variant: unknown; profile: string; requirements: Record<string, unknown>;
  error: { code: string; message: string } | null; recommended_action: string | null; tasks_total: number;
  tasks_open: number; reduce: { runner_command?: string[]; payload?: unknown } | null;
  objective: { key: string; goal: 'maximize' | 'minimize' } | null; spec: Record<string, unknown>;
}

export interface TaskCounts { queued: number; preparing: number; running: number; completed: number; failed: number; cancelled: number }

export interface AttemptRecord {
  attempt: number; node: string; exit_code: number | null; error: { code: string; message: string } | null;
  started_at: string | null; finished_at: string | null;
}

export interface TaskRecord {
  id: string; job_id: string; index: number; kind: string; status: string; status_reason: string | null;
  attempt: number; exit_code: number | null; error: { code: string; message: string } | null; output: string;
  output_tail: string; latest_progress: { progress: number; message?: string } | null; item: unknown;
  payload: unknown; result: unknown; result_quality: number | null; result_warnings: string[];
  started_at: string | null; finished_at: string | null; duration_ms: number | null;
  cold_start: { fetch_ms: number; build_ms: number; init_ms: number; sandbox_ms: number } | null;
  node: string | null; meta: Record<string, unknown>;
}

/** What a worker gets for one leased attempt. */
export interface LeasedTask {
  task_id: string; job_id: string; project_id: string; account_id: string; project: string; revision_id: string;
  content_hash: string; index: number; task_count: number; attempt: number; lease_token: string;
  payload: unknown; runner_command: string[] | null; env: Record<string, string>; timeout_s: number;
  checkpoint: boolean; kind: string;
}

/** What a worker needs to prepare a runtime: for a leased task, or ahead of time for /init. */
export type RuntimeTarget = Pick<LeasedTask, 'project_id' | 'account_id' | 'project' | 'content_hash' | 'revision_id' | 'env'>;

/** What a worker reports when an attempt ends. */
export interface AttemptReport {
  task_id: string; attempt: number; lease_token: string; exit_code: number | null;
  outcome: 'succeeded' | 'failed' | 'timed_out' | 'cancelled' | 'worker_lost' | 'handed_back';
  error: { code: string; message: string } | null; output: string; output_tail: string;
  result: unknown; result_quality: number | null; result_warnings: string[]; duration_ms: number;
  started_at: string | null; finished_at: string; cold_start: TaskRecord['cold_start'];
}
