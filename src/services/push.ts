/**
 * A push (SPEC §3.1): one project takes in one push at a time (a lease row in the store, so it holds
 * across API processes); the body streams through intake to a temp file while it is hashed and checked;
 * a new content hash publishes a revision at once, an identical one publishes nothing.
 *
 * Invariants: the temp file is adopted into the blob store before the revision that names it commits,
 * and deleted on every other path; the push lock is released on every path.
 */
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { AppError, formatBytes } from '../core/errors.js';
import { diffFiles } from '../core/tarball-diff.js';
import type { FileEntry } from '../core/content-hash.js';
import type { Project } from '../store/port.js';
import { takeInTarball } from '../tarball/intake.js';
import { inspectProject } from '../tarball/inspect.js';
import type { Deps } from './deps.js';
import { pushedBytes } from './metrics.js';
import { projectReadiness } from './readiness.js';

const LOCK_TTL_S = 60;

export interface PushRequest {
  contentType: string | undefined;
  contentLength: number | null;
  body: Readable;
}

export async function pushProject(deps: Deps, project: Project, req: PushRequest) {
  const { config, store, blobs } = deps;
  if (req.contentType?.toLowerCase().startsWith('multipart/form-data')) {
    throw new AppError('unsupported_media_type', {
      reason: 'Push takes the tarball itself as the raw body, not a multipart form: use `curl --data-binary @code.tar.gz` instead of -F.',
    });
  }
  if (req.contentLength !== null && req.contentLength > config.maxPushBytes) {
    throw new AppError('tarball_too_large', { limit: formatBytes(config.maxPushBytes) });
  }
  await checkStorageQuota(deps, project.account_id, req.contentLength ?? 0);

  const holder = randomUUID();
  if (!(await store.tryLockPush(project.id, holder, LOCK_TTL_S))) {
    throw new AppError('push_in_progress', { name: project.name }, {}, { 'Retry-After': '1' });
  }
  const renew = setInterval(() => {
    store.renewPushLock(project.id, holder, LOCK_TTL_S).catch((err) => deps.log.warn({ err }, 'push lock renewal failed'));
  }, (LOCK_TTL_S / 3) * 1000);
  let tempPath: string | null = null;
  try {
    const intake = await takeInTarball(req.body, {
      tmpDir: blobs.tmpDir,
      limits: { maxBodyBytes: config.maxPushBytes, maxExpandedBytes: config.maxExpandedBytes, maxEntries: config.maxTarballEntries },
    });
    tempPath = intake.tarballPath;
    pushedBytes.inc(intake.sizeBytes);
    const { manifest, warnings } = inspectProject(intake, { remoteDir: project.remote_dir, allowRunc: config.allowRunc });
    const active = project.active_revision_id ? await store.getRevision(project.active_revision_id) : null;
    if (active && active.content_hash === intake.contentHash) {
      return { status: 200, body: await pushBody(deps, project, active, intake, manifest, warnings, true, undefined) };
    }
    await checkStorageQuota(deps, project.account_id, intake.sizeBytes);
    await blobs.adopt(intake.tarballPath, intake.tarballSha256);
    tempPath = null;
    const outcome = await store.publishRevision(project, {
      content_hash: intake.contentHash, tarball_sha256: intake.tarballSha256, size_bytes: intake.sizeBytes,
      files: intake.files, manifest: manifest as unknown as Record<string, unknown>, manifest_warnings: warnings,
    }, config.keepRevisions);
    await Promise.all(outcome.releasedTarballs.map((sha) => blobs.remove(sha)));
    const diff = !outcome.unchanged && outcome.previous ? diffFiles(outcome.previous.files, intake.files) : undefined;
    return {
      status: outcome.unchanged ? 200 : 201,
      body: await pushBody(deps, project, outcome.revision, intake, manifest, warnings, outcome.unchanged, diff),
    };
  } finally {
    clearInterval(renew);
    if (tempPath) await rm(tempPath, { force: true });
    await store.releasePushLock(project.id, holder);
  }
}

async function pushBody(
  deps: Deps, project: Project, revision: { content_hash: string; revision: number },
  intake: { sizeBytes: number; files: FileEntry[] }, manifest: unknown, warnings: string[], unchanged: boolean,
  diff: ReturnType<typeof diffFiles> | undefined,
) {
  // Readiness after the push: a content hash pushed before may still be warm somewhere.
  const fresh = (await deps.store.getProject(project.account_id, project.name)) ?? project;
  const { readiness } = await projectReadiness(deps, fresh);
  return {
    name: project.name,
    content_hash: revision.content_hash,
    revision: revision.revision,
    published: true,
    unchanged,
    can_accept_new_jobs: true,
    ready_for_jobs: readiness.ready_for_jobs,
    size_bytes: intake.sizeBytes,
    file_count: intake.files.length,
    manifest: manifest as Record<string, unknown>,
    manifest_warnings: warnings,
    ...(diff ? { tarball_diff: diff } : {}),
  };
}

async function checkStorageQuota(deps: Deps, accountId: string, adding: number): Promise<void> {
  const account = await deps.store.getAccount(accountId);
  const limit = account?.quotas.stored_bytes ?? null;
  if (limit === null) return;
  const used = (await deps.store.usage(accountId)).stored_bytes;
  if (used + adding > limit) {
    throw new AppError('quota_exceeded', { quota: 'stored_bytes', limit, used }, { quota: 'stored_bytes', limit, used });
  }
}
