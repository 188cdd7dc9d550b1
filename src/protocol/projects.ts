/** Project, revision and readiness shapes (SPEC §3, §5); public field names. */
import { Type } from '@sinclair/typebox';
import { Nullable, ProjectName, StringMap } from './common.js';

export const CreateProjectBody = Type.Object({
  name: ProjectName,
  remote_dir: Type.Optional(Nullable(Type.String({ pattern: '^/', maxLength: 4096 }))),
  description: Type.Optional(Nullable(Type.String({ maxLength: 10_000 }))),
  env: Type.Optional(StringMap),
}, { additionalProperties: false });

/** PUT accepts metadata only; other fields are refused with 400 by the route, not silently dropped. */
export const UpdateProjectBody = Type.Object({
  remote_dir: Type.Optional(Nullable(Type.String({ pattern: '^/', maxLength: 4096 }))),
  description: Type.Optional(Nullable(Type.String({ maxLength: 10_000 }))),
  env: Type.Optional(StringMap),
});
export const UPDATABLE_PROJECT_FIELDS = ['remote_dir', 'description', 'env'] as const;

/** The readiness fields the project object and the status share (SPEC §3, §5). */
const readinessFields = {
  content_hash: Nullable(Type.String()),
  revision: Nullable(Type.Integer()),
  published_at: Nullable(Type.String()),
  can_accept_new_jobs: Type.Boolean(),
  ready_for_jobs: Type.Boolean(),
  status_message: Type.String(),
};

export const ProjectObject = Type.Object({
  name: Type.String(),
  remote_dir: Nullable(Type.String()),
  description: Nullable(Type.String()),
  env: StringMap,
  created_at: Type.String(),
  updated_at: Type.String(),
  ...readinessFields,
}, { $id: 'Project' });

export const RevisionObject = Type.Object({
  revision: Type.Integer(),
  content_hash: Type.String(),
  published_at: Type.String(),
  size_bytes: Type.Integer(),
  file_count: Type.Integer(),
  active: Type.Boolean(),
  tarball_available: Type.Boolean(),
  manifest_warnings: Type.Array(Type.String()),
});

export const TarballDiff = Type.Object({
  added_files: Type.Array(Type.String()),
  removed_files: Type.Array(Type.String()),
  changed_files: Type.Array(Type.String()),
});

export const PushResult = Type.Object({
  name: Type.String(),
  content_hash: Type.String(),
  revision: Type.Integer(),
  published: Type.Boolean(),
  unchanged: Type.Boolean(),
  can_accept_new_jobs: Type.Boolean(),
  ready_for_jobs: Type.Boolean(),
  size_bytes: Type.Integer(),
  file_count: Type.Integer(),
  manifest: Type.Record(Type.String(), Type.Unknown()),
  manifest_warnings: Type.Array(Type.String()),
  tarball_diff: Type.Optional(TarballDiff),
});

const WorkerCounts = Type.Object({
  eligible: Type.Integer(), warm: Type.Integer(), initializing: Type.Integer(), failed: Type.Integer(), cold: Type.Integer(),
});

export const StatusObject = Type.Object({
  name: Type.String(),
  ...readinessFields,
  workers: WorkerCounts,
  jobs: Type.Object({ queued: Type.Integer(), running: Type.Integer() }),
  invalidated_at: Nullable(Type.String()),
  warnings: Type.Array(Type.String()),
});

export const NodeObject = Type.Object({
  node: Type.String(),
  state: Type.String(),
  phase: Nullable(Type.String()),
  content_hash: Nullable(Type.String()),
  status_reason: Nullable(Type.String({ description: '(ours) why the runtime is in its state, e.g. "dropped: idle for 600 s"' })),
  started_at: Nullable(Type.String()),
  finished_at: Nullable(Type.String()),
  duration_ms: Nullable(Type.Integer()),
  error: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
  log_tail: Type.String(),
  validation: Type.Array(Type.Object({ check: Type.String(), ok: Type.Boolean(), message: Type.String() })),
});

export const StatusDetailsObject = Type.Composite([
  StatusObject,
  Type.Object({ nodes: Type.Array(NodeObject), recommended_action: Nullable(Type.String()) }),
]);

export const InitResult = Type.Object({
  name: Type.String(), content_hash: Type.String(), targeted_workers: Type.Integer(), already_warm: Type.Integer(),
});

export const InvalidateResult = Type.Object({
  name: Type.String(), invalidated: Type.Boolean(), content_hash: Nullable(Type.String()),
});

export const CancelQueuedResult = Type.Object({ cancelled_jobs: Type.Integer(), cancelled_tasks: Type.Integer() });
