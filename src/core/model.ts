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
