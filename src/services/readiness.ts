/** Reads the snapshot a project's readiness is decided from, and asks core to decide. */
import { decideReadiness } from '../core/readiness.js';
import type { Project } from '../store/port.js';
import type { Deps } from './deps.js';

export async function projectReadiness(deps: Pick<Deps, 'store' | 'runtime'>, project: Project) {
  const revision = project.active_revision_id ? await deps.store.getRevision(project.active_revision_id) : null;
  const snapshot = await deps.store.readinessSnapshot(project, revision?.content_hash ?? null);
  const warnings = deps.runtime.warning ? [deps.runtime.warning] : [];
  return { revision, readiness: decideReadiness({ project, revision, snapshot, now: Date.now(), warnings }) };
}

/** The public project object (SPEC §3): config plus readiness of the active revision. */
export async function projectObject(deps: Pick<Deps, 'store' | 'runtime'>, project: Project) {
  const { readiness } = await projectReadiness(deps, project);
  return {
    name: project.name,
    remote_dir: project.remote_dir,
    description: project.description,
    env: project.env,
    created_at: project.created_at,
    updated_at: project.updated_at,
    content_hash: readiness.content_hash,
    revision: readiness.revision,
    published_at: readiness.published_at,
    can_accept_new_jobs: readiness.can_accept_new_jobs,
    ready_for_jobs: readiness.ready_for_jobs,
    status_message: readiness.status_message,
  };
}
