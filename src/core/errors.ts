/**
 * The one error registry. Every error a client can see is listed here with its HTTP status, whether a
 * retry may succeed, and a message template that says what was wrong and how to fix it.
 *
 * Invariants: clients branch on `code`, never on message text; a code's status never changes once
 * published; templates name their parameters as `{name}` and every parameter is filled by `AppError`.
 */

interface ErrorSpec {
  readonly status: number;
  readonly retryable: boolean;
  readonly message: string;
}

function spec(status: number, message: string, retryable = false): ErrorSpec {
  return { status, retryable, message };
}

export const ERRORS = {
  // 400 malformed
  invalid_json: spec(400, 'The request body is not valid JSON: {reason}. Send a JSON document with Content-Type: application/json.'),
  invalid_request: spec(400, '{reason}'),
  unknown_field: spec(400, 'Field(s) {fields} cannot be changed here; only {allowed} may be sent.'),
  invalid_tarball: spec(400, 'The body is not a readable tar archive: {reason}. Create it with `tar czf code.tar.gz -C dir .` and send it with `--data-binary @code.tar.gz`.'),
  invalid_kv_key: spec(400, 'KV key is invalid: {reason}. Keys are 1-512 bytes of UTF-8 without control characters, percent-encoded in the path.'),
  invalid_cursor: spec(400, 'The cursor "{cursor}" is not one this server returned; start again without ?cursor=.'),
  // 401 / 403
  unauthorized: spec(401, '{reason} Send `Authorization: Bearer <token>` with an API key (flk_...).'),
  forbidden: spec(403, 'Your key has role "{role}", which may not {action}. Ask an admin for a key with role {needed}.'),
  // 404
  route_not_found: spec(404, 'There is no route {method} {url}. See /docs for the API reference.'),
  project_not_found: spec(404, 'Project "{name}" was not found. List your projects with GET /api/v1/projects.'),
  kv_key_not_found: spec(404, 'KV key "{key}" was not found in project "{project}".'),
  account_not_found: spec(404, 'Account "{id}" was not found.'),
  key_not_found: spec(404, 'Key "{id}" was not found.'),
  job_not_found: spec(404, 'Job "{id}" was not found.'),
  // 409
  project_exists: spec(409, 'A project named "{name}" already exists in this account; pick another name or push to it.'),
  account_exists: spec(409, 'An account named "{name}" already exists; pick another name.'),
  project_has_active_jobs: spec(409, 'Project "{name}" still has {count} queued or running job(s); cancel them (PUT /api/v1/projects/{name}/cancel-queued, POST /api/v1/jobs/:id/cancel) or wait, then delete again.'),
  idempotency_conflict: spec(409, 'Idempotency key "{key}" was already used for job {job_id} with a different request; use a new key for a different job.'),
  push_in_progress: spec(409, 'Another push of project "{name}" is still being taken in; retry in a second.', true),
  project_not_pushed: spec(409, 'Project "{name}" has no revision yet; push a tarball first (POST /api/v1/projects/{name}/push).'),
  lease_mismatch: spec(409, 'The lease on task {task_id} attempt {attempt} is no longer held by this worker; drop the attempt.'),
  // 412
  kv_version_mismatch: spec(412, 'KV key "{key}" is at version {current}, not {expected}; read it again and retry with its ETag in If-Match.'),
  kv_key_exists: spec(412, 'KV key "{key}" already exists (If-None-Match: * creates only); drop the header to overwrite.'),
  // 413
  body_too_large: spec(413, 'The request body is larger than the limit of {limit}; send a smaller body.'),
  tarball_too_large: spec(413, 'The tarball is larger than the limit of {limit}; leave build outputs and data out of it (use data_sources for large inputs).'),
  tarball_expanded_too_large: spec(413, 'The tarball expands to more than the limit of {limit}; leave large files out of it (use data_sources for large inputs).'),
  tarball_too_many_entries: spec(413, 'The tarball holds more than the limit of {limit} entries; leave generated files out of it.'),
  result_too_large: spec(413, 'The task\'s result is {size}, over the limit of {limit}; write large outputs to an artifact or KV and return a reference to them.'),
  job_too_large: spec(413, 'The job\'s tasks would carry about {size} of payload in all, over the limit of {limit}: each of its {tasks} tasks gets its own copy of the job\'s payload (about {per_task} here). Keep what the tasks share in KV or a data source and put a reference in the payload, or use batch_size for fewer tasks.'),
  kv_value_too_large: spec(413, 'The KV value is larger than the limit of {limit}; store large data elsewhere and keep a reference in KV.'),
  // 415
  unsupported_media_type: spec(415, '{reason}'),
  // 422
  validation_failed: spec(422, 'The request is well-formed but invalid: {summary}. See details.problems for each problem with its JSON path.'),
  invalid_manifest: spec(422, 'computalot.project.json is invalid: {summary}. See details.problems for each problem with its JSON path.'),
  unsafe_path: spec(422, 'Tarball entry "{entry}" has an absolute path or one that contains "..", which could write outside the project; tar from inside the project folder with relative paths.'),
  unsafe_link: spec(422, 'Tarball entry "{entry}" is a symlink to "{target}", which is absolute or leaves the project tree; make it relative and inside the project.'),
  invalid_hardlink: spec(422, 'Tarball entry "{entry}" is a hard link to "{target}", which is not an earlier regular file of the archive; replace it with a copy of the file.'),
  unsupported_entry: spec(422, 'Tarball entry "{entry}" is a {kind}; only regular files, folders and symlinks may be pushed.'),
  dockerfile_missing: spec(422, 'The tarball has no Dockerfile at "{path}" (build.dockerfile); add it at the root of the tarball or point build.dockerfile at it.'),
  path_conflict: spec(422, 'Tarball entry "{entry}" is a file or symlink, but the archive also uses "{entry}" as a folder (for "{other}"); keep only one of them.'),
  nested_project_root: spec(422, 'The manifest and Dockerfile are inside the top-level folder "{folder}/"; tar from inside it instead: `tar czf code.tar.gz -C {folder} .`'),
  // 429
  quota_exceeded: spec(429, 'Quota "{quota}" of this account is exceeded: limit {limit}, in use {used}. Free some up or ask an admin to raise it.'),
  kv_key_limit: spec(429, 'Project "{project}" already holds the limit of {limit} KV keys; delete some keys first.'),
  // 5xx
  shutting_down: spec(503, 'The server is shutting down; retry against another instance or in a few seconds.', true),
  store_failed: spec(503, 'The database failed while creating this job ({reason}); it was not created and may be submitted again.', true),
  internal_error: spec(500, 'The server failed unexpectedly ({reason}); this is a bug, and the request may be retried.', true),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export type ErrorParams = Record<string, string | number>;

function render(template: string, params: ErrorParams): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    name in params ? String(params[name]) : whole,
  );
}

export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly details: Record<string, unknown>;
  /** Extra response headers, such as Retry-After. */
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    params: ErrorParams = {},
    details: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) {
    const entry = ERRORS[code];
    super(render(entry.message, params));
    this.name = 'AppError';
    this.code = code;
    this.status = entry.status;
    this.retryable = entry.retryable;
    this.details = details;
    this.headers = headers;
  }

  toBody(): { error: { code: ErrorCode; message: string; details: Record<string, unknown> } } {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

/** One problem of a 422, located by its JSON path (RFC 6901 pointer, "" for the root). */
export interface Problem {
  path: string;
  message: string;
}

export function isAppError(value: unknown): value is AppError {
  return value instanceof AppError;
}

/** Human size for limits in messages: 512 MiB, 4 GiB, 1 MiB. */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1 && value % 1024 === 0) {
    value /= 1024;
    unit += 1;
  }
  return `${value} ${units[unit]}`;
}
