/** Jobs and reports for tests that drive the Store port directly (leases, quotas, fair sharing, requirements). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AttemptReport, LeasedTask, Project } from '../../src/core/model.js';
import type { NewJob, Store } from '../../src/store/port.js';
import { openStore } from '../../src/store/sql-store.js';
import { testDatabase, type TestDatabase } from './db.js';

/** A store on this pass's database (a fresh PostgreSQL database, or SQLite in a temporary folder). */
export async function testStore(prefix: string): Promise<{ store: Store; db: TestDatabase; dir: string; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const db = await testDatabase();
  const store = await openStore({ databaseUrl: db.url, sqlitePath: join(dir, 'db.sqlite') });
  return {
    store, db, dir,
    async close() {
      await store.close();
      await db.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

let published = 0;

/** A project of the account with one published revision (its content hash unique in the process). */
export async function publishedProject(store: Store, accountId: string, name = 'p') {
  published += 1;
  const project = await store.createProject(accountId, { name, remote_dir: null, description: null, env: {} });
  const { revision } = await store.publishRevision(project, {
    content_hash: `sha256:${published}`, tarball_sha256: String(published).padStart(64, '0'), size_bytes: 10, files: [], manifest: {}, manifest_warnings: [],
  }, 10);
  return { project, revision };
}

/** A structured_runner job of `tasks` tasks running `true`, for a published revision of `project`. */
export function storeJob(project: Pick<Project, 'id' | 'name' | 'account_id'>, revision: { id: string; content_hash: string },
  opts: { tasks?: number; priority?: number; requirements?: Record<string, number> } = {}): NewJob {
  const tasks = opts.tasks ?? 1;
  return {
    account_id: project.account_id, project_id: project.id, project: project.name, revision_id: revision.id,
    content_hash: revision.content_hash, type: 'structured_runner', priority: opts.priority ?? 0, timeout_s: 60, queue_timeout_s: null,
    max_attempts: 3, backoff_s: 0, checkpoint: false, runner_command: ['true'], env: {}, meta: null, variant: null,
    profile: 'cpu', requirements: opts.requirements ?? {}, reduce: null, objective: null, spec: {}, idempotency: null, tasks_total: tasks,
    tasks: Array.from({ length: tasks }, (_, index) => ({ index, kind: 'task', payload: { index }, item: null, runner_command: null, meta: {} })),
  };
}

/** The report of a leased task that exited 0. */
export function succeededReport(task: LeasedTask): AttemptReport {
  return {
    task_id: task.task_id, attempt: task.attempt, lease_token: task.lease_token, exit_code: 0, outcome: 'succeeded',
    error: null, output: '', output_tail: '', result: null, result_quality: 1, result_warnings: [],
    duration_ms: 1, started_at: new Date().toISOString(), finished_at: new Date().toISOString(), cold_start: null,
  };
}
