/**
 * Readiness of a project's active revision (SPEC §5), decided from a snapshot without I/O.
 *
 * Per worker, a prepared runtime of (worker, project, content_hash) is cold, initializing, warm, failed
 * or stale; a live worker without a row is cold for that hash. A worker is live while it is online and
 * its last heartbeat is younger than a lease (30 s). `ready_for_jobs` is true when at least one live
 * worker is warm for the active hash. The status message says what is true now and what happens next.
 */
import type { PreparedRuntime, Project, ReadinessSnapshot, Revision, Worker } from './model.js';

export const LEASE_SECONDS = 30;

export interface NodeReadiness {
  node: string; state: string; phase: string | null; content_hash: string | null;
  /** (ours) why the runtime is in its state: "preparing runtime on node-1: build step 2/4", "dropped: idle for 600 s". */
  status_reason: string | null; started_at: string | null;
  finished_at: string | null; duration_ms: number | null; error: { code: string; message: string } | null;
  log_tail: string; validation: Array<{ check: string; ok: boolean; message: string }>;
}

export interface Readiness {
  name: string; content_hash: string | null; revision: number | null; published_at: string | null;
  can_accept_new_jobs: boolean; ready_for_jobs: boolean; status_message: string;
  workers: { eligible: number; warm: number; initializing: number; failed: number; cold: number };
  jobs: { queued: number; running: number }; invalidated_at: string | null; warnings: string[];
}

export function isLive(worker: Worker, now: number): boolean {
  return worker.status === 'online' && now - Date.parse(worker.last_seen_at) < LEASE_SECONDS * 1000;
}

function nodesOf(live: Worker[], runtimes: PreparedRuntime[], hash: string | null): NodeReadiness[] {
  return live.map((w) => {
    const rt = runtimes.find((r) => r.worker_id === w.id);
    return {
      node: w.node, state: rt?.state ?? 'cold', phase: rt?.phase ?? null, content_hash: hash, status_reason: rt?.status_reason ?? null,
      started_at: rt?.started_at ?? null, finished_at: rt?.finished_at ?? null, duration_ms: rt?.duration_ms ?? null,
      error: rt?.error ?? null, log_tail: rt?.log_tail ?? '', validation: rt?.validation ?? [],
    };
  });
}

export function decideReadiness(input: {
  project: Project; revision: Revision | null; snapshot: ReadinessSnapshot; now: number; warnings: string[];
}): Readiness & { nodes: NodeReadiness[]; recommended_action: string | null } {
  const { project, revision, snapshot, now } = input;
  const live = snapshot.workers.filter((w) => isLive(w, now));
  const nodes = nodesOf(live, snapshot.runtimes, revision?.content_hash ?? null);
  const count = (state: string) => nodes.filter((n) => n.state === state).length;
  const workers = {
    eligible: live.length, warm: count('warm'), initializing: count('initializing'), failed: count('failed'),
    cold: count('cold') + count('stale'),
  };
  const { message, action } = explain(project, revision, workers, nodes);
  const warningText = input.warnings.length > 0 ? ` Note: ${input.warnings.join(' ')}` : '';
  return {
    name: project.name,
    content_hash: revision?.content_hash ?? null,
    revision: revision?.revision ?? null,
    published_at: revision?.published_at ?? null,
    can_accept_new_jobs: revision !== null,
    ready_for_jobs: revision !== null && workers.warm > 0,
    status_message: message + warningText,
    workers,
    jobs: snapshot.jobs,
    invalidated_at: project.invalidated_at,
    warnings: input.warnings,
    nodes,
    recommended_action: action,
  };
}

function explain(
  project: Project, revision: Revision | null, w: Readiness['workers'], nodes: NodeReadiness[],
): { message: string; action: string | null } {
  if (!revision) {
    return {
      message: `Project ${project.name} has no published revision yet; push a tarball before submitting jobs.`,
      action: `Push your code: POST /api/v1/projects/${project.name}/push with the tarball as the body.`,
    };
  }
  const rev = `Revision ${revision.revision} is published`;
  if (w.warm > 0) {
    return { message: `${rev} and warm on ${w.warm} of ${w.eligible} worker(s); new jobs start without a cold start.`, action: null };
  }
  if (w.eligible === 0) {
    return {
      message: `${rev}; no worker is online, so the next job will wait for a worker and then cold-start.`,
      action: 'Start a worker (COMPUTALOT_LOCAL_WORKERS >= 1, or `computalot worker --server URL --token wkr_…`).',
    };
  }
  if (w.initializing > 0) {
    const phase = nodes.find((n) => n.state === 'initializing')?.phase ?? 'fetch';
    return {
      message: `${rev}; ${w.initializing} of ${w.eligible} worker(s) are preparing it (phase ${phase}), and jobs start once one is warm.`,
      action: 'Wait for preparation to finish; follow it on the project stream.',
    };
  }
  if (w.failed === w.eligible) {
    const failed = nodes.find((n) => n.state === 'failed');
    const where = failed?.phase ? ` at ${failed.phase}` : '';
    const why = failed?.error ? ` (${failed.error.message})` : '';
    return {
      message: `Preparation failed on ${w.failed} of ${w.eligible} worker(s)${where}${why}; see /status/details.`,
      action: 'Read nodes[].error and log_tail, fix the project, and push again.',
    };
  }
  const stale = nodes.filter((n) => n.state === 'stale');
  if (stale.length > 0) {
    const why = stale[0]!.status_reason ? ` (${stale[0]!.status_reason})` : '';
    return {
      message: `${rev}; its prepared runtime was discarded on ${stale.length} of ${w.eligible} worker(s)${why}, so the next job will cold-start (or call /init).`,
      action: `Optional: POST /api/v1/projects/${project.name}/init to prepare workers again ahead of the next job.`,
    };
  }
  return {
    message: `${rev}; no worker has prepared it yet, so the next job will cold-start (or call /init).`,
    action: `Optional: POST /api/v1/projects/${project.name}/init to prepare workers ahead of the first job.`,
  };
}
