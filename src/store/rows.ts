/** Row → domain mappers: JSON text columns parsed, 0/1 to booleans, node numbers to stable labels. */
import { AppError } from '../core/errors.js';
import type { RuntimeState } from '../core/states.js';
import type {
  AccountsTable, ApiKeysTable, KvTable, PreparedRuntimesTable, ProjectsTable, RevisionsTable, WorkersTable,
  WorkerTokensTable,
} from './db-types.js';
import type {
  Account, ApiKey, KvEntry, PreparedRuntime, Project, Revision, Role, Worker, WorkerToken,
} from './port.js';

export const toAccount = (r: AccountsTable): Account => ({
  id: r.id, name: r.name, quotas: JSON.parse(r.quotas), created_at: r.created_at,
});

export const toApiKey = (r: ApiKeysTable): ApiKey => ({
  id: r.id, account_id: r.account_id, role: r.role as Role, name: r.name, key_prefix: r.key_prefix,
  created_at: r.created_at, revoked_at: r.revoked_at,
});

export const toWorkerToken = (r: WorkerTokensTable): WorkerToken => ({
  id: r.id, name: r.name, created_at: r.created_at, revoked_at: r.revoked_at,
});

export const nodeLabel = (nodeNumber: number): string => `node-${nodeNumber}`;

export const toWorker = (r: WorkersTable): Worker => ({
  id: r.id, node: nodeLabel(r.node_number), embedded: r.embedded === 1, profile: r.profile,
  resources: JSON.parse(r.resources), runtime: JSON.parse(r.runtime), slots: r.slots, status: r.status,
  started_at: r.started_at, last_seen_at: r.last_seen_at,
});

export const toProject = (r: ProjectsTable): Project => ({
  id: r.id, account_id: r.account_id, name: r.name, remote_dir: r.remote_dir, description: r.description,
  env: JSON.parse(r.env), created_at: r.created_at, updated_at: r.updated_at,
  active_revision_id: r.active_revision_id, invalidated_at: r.invalidated_at,
});

export const toRevision = (r: Omit<RevisionsTable, 'files'>): Revision => ({
  id: r.id, project_id: r.project_id, revision: Number(r.revision), content_hash: r.content_hash,
  tarball_sha256: r.tarball_sha256, size_bytes: Number(r.size_bytes), file_count: Number(r.file_count),
  manifest: JSON.parse(r.manifest), manifest_warnings: JSON.parse(r.manifest_warnings),
  published_at: r.published_at, tarball_deleted_at: r.tarball_deleted_at,
});

export const toRuntime = (r: PreparedRuntimesTable & { node_number: number }): PreparedRuntime => ({
  id: r.id, worker_id: r.worker_id, node: nodeLabel(r.node_number), project_id: r.project_id,
  content_hash: r.content_hash, state: r.state as RuntimeState, phase: r.phase, status_reason: r.status_reason,
  started_at: r.started_at, finished_at: r.finished_at, duration_ms: r.duration_ms,
  error: r.error_code ? { code: r.error_code, message: r.error_message ?? '' } : null,
  log_tail: r.log_tail, validation: JSON.parse(r.validation), init_requested_at: r.init_requested_at,
});

export const toKv = (r: KvTable): KvEntry => ({
  key: r.key, value: r.value, version: Number(r.version), updated_at: r.updated_at, expires_at: r.expires_at,
});

/** Cursors are opaque to clients: base64url of the last row's sort key. */
export function encodeCursor(key: string | number): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

export function decodeCursor(cursor: string | null): string | number | null {
  if (!cursor) return null;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  if (typeof value === 'string' || typeof value === 'number') return value;
  throw new AppError('invalid_cursor', { cursor });
}

/** Fetch limit+1 rows; the extra row only says whether there is a next page. */
export function pageOf<T, K extends string | number>(rows: T[], limit: number, keyOf: (row: T) => K) {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next_cursor: rows.length > limit && last !== undefined ? encodeCursor(keyOf(last)) : null };
}
