/** core/readiness decides status from snapshots alone; each branch of the message is checked here. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PreparedRuntime, Project, Revision, Worker } from '../../src/core/model.js';
import { decideReadiness } from '../../src/core/readiness.js';

const now = Date.parse('2026-01-01T00:00:30Z');
const project: Project = {
  id: 'prj_1', account_id: 'acc_1', name: 'demo', remote_dir: null, description: null, env: {},
  created_at: '', updated_at: '', active_revision_id: 'rev_1', invalidated_at: null,
};
const revision: Revision = {
  id: 'rev_1', project_id: 'prj_1', revision: 3, content_hash: 'sha256:abc', tarball_sha256: 'x', size_bytes: 1,
  file_count: 1, manifest: {}, manifest_warnings: [], published_at: '2026-01-01T00:00:00Z', tarball_deleted_at: null,
};
const worker = (n: number, lastSeen = '2026-01-01T00:00:25Z', status = 'online'): Worker => ({
  id: `wkr_${n}`, node: `node-${n}`, embedded: true, profile: 'cpu', resources: {}, runtime: {}, slots: 1, status,
  started_at: '', last_seen_at: lastSeen,
});
const runtime = (n: number, state: PreparedRuntime['state'], extra: Partial<PreparedRuntime> = {}): PreparedRuntime => ({
  id: `rt_${n}`, worker_id: `wkr_${n}`, node: `node-${n}`, project_id: 'prj_1', content_hash: 'sha256:abc', state,
  phase: null, status_reason: null, started_at: null, finished_at: null, duration_ms: null, error: null, log_tail: '',
  validation: [], init_requested_at: null, ...extra,
});
const decide = (workers: Worker[], runtimes: PreparedRuntime[], rev: Revision | null = revision, warnings: string[] = []) =>
  decideReadiness({ project, revision: rev, snapshot: { workers, runtimes, jobs: { queued: 2, running: 1 } }, now, warnings });

describe('readiness', () => {
  it('without a revision: cannot accept jobs and says to push', () => {
    const r = decide([], [], null);
    assert.equal(r.can_accept_new_jobs, false);
    assert.equal(r.ready_for_jobs, false);
    assert.match(r.status_message, /no published revision/);
    assert.match(r.recommended_action ?? '', /push/);
  });

  it('without workers: accepts jobs, not ready, says the next job will cold-start', () => {
    const r = decide([], []);
    assert.equal(r.can_accept_new_jobs, true);
    assert.equal(r.ready_for_jobs, false);
    assert.match(r.status_message, /Revision 3 is published; no worker is online/);
    assert.match(r.status_message, /cold-start/);
    assert.deepEqual(r.workers, { eligible: 0, warm: 0, initializing: 0, failed: 0, cold: 0 });
    assert.deepEqual(r.jobs, { queued: 2, running: 1 });
  });

  it('a runtime dropped on its worker (stale): says why and that the next job cold-starts', () => {
    const r = decide([worker(1), worker(2)], [runtime(1, 'stale', { status_reason: 'dropped: idle for 600 s' })]);
    assert.equal(r.ready_for_jobs, false);
    assert.equal(r.nodes[0]?.status_reason, 'dropped: idle for 600 s');
    assert.equal(r.status_message, 'Revision 3 is published; its prepared runtime was discarded on 1 of 2 worker(s) (dropped: idle for 600 s), so the next job will cold-start (or call /init).');
    assert.match(r.recommended_action ?? '', /\/init/);
  });

  it('with a cold worker: suggests /init, the exact public sentence', () => {
    const r = decide([worker(1)], []);
    assert.equal(r.status_message, 'Revision 3 is published; no worker has prepared it yet, so the next job will cold-start (or call /init).');
    assert.equal(r.workers.cold, 1);
    assert.equal(r.nodes[0]?.state, 'cold');
  });

  it('warm on one live worker: ready', () => {
    const r = decide([worker(1), worker(2)], [runtime(1, 'warm')]);
    assert.equal(r.ready_for_jobs, true);
    assert.equal(r.workers.warm, 1);
    assert.equal(r.workers.cold, 1);
  });

  it('a warm runtime on a worker whose heartbeat stopped does not count', () => {
    const r = decide([worker(1, '2026-01-01T00:00:00Z')], [runtime(1, 'warm')]);
    assert.equal(r.ready_for_jobs, false);
    assert.equal(r.workers.eligible, 0);
  });

  it('failed everywhere: names the phase and the error', () => {
    const err = { code: 'build_failed', message: 'RUN pip install (exit 1)' };
    const r = decide([worker(1), worker(2)], [runtime(1, 'failed', { phase: 'build', error: err }), runtime(2, 'failed', { phase: 'build', error: err })]);
    assert.equal(r.status_message, 'Preparation failed on 2 of 2 worker(s) at build (RUN pip install (exit 1)); see /status/details.');
    assert.deepEqual(r.nodes[0]?.error, err);
  });

  it('initializing: says which phase', () => {
    const r = decide([worker(1)], [runtime(1, 'initializing', { phase: 'build' })]);
    assert.match(r.status_message, /preparing it \(phase build\)/);
  });

  it('carries runtime warnings into the message', () => {
    const r = decide([], [], revision, ['Tasks run as host processes.']);
    assert.deepEqual(r.warnings, ['Tasks run as host processes.']);
    assert.match(r.status_message, /Note: Tasks run as host processes\./);
  });
});
