/**
 * Jobs end to end: the columns the queue, the leases and the runner protocol need on `jobs` and `tasks`,
 * the `attempts` history, and idempotency keys. Queue order is (priority desc, available_at, id); the
 * partial index on queued tasks keeps leasing fast however many tasks have finished.
 */
import { sql, type Kysely, type Migration } from 'kysely';

type Dialect = 'sqlite' | 'postgres';

export function jobsMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      const jobColumns: Array<[string, string, string | number | null]> = [
        ['priority', 'integer', 0], ['timeout_s', 'integer', 600], ['queue_timeout_s', 'integer', null],
        ['max_attempts', 'integer', 3], ['backoff_s', 'real', 2], ['checkpoint', 'integer', 0],
        ['runner_command', 'text', null], ['env', 'text', '{}'], ['meta', 'text', 'null'], ['variant', 'text', 'null'],
        ['profile', 'text', 'cpu'], ['requirements', 'text', '{}'], ['error', 'text', null],
        ['recommended_action', 'text', null], ['reduce', 'text', null], ['objective', 'text', null],
        ['tasks_open', 'integer', 0], ['request_hash', 'text', null],
      ];
      for (const [name, type, fallback] of jobColumns) {
        await db.schema.alterTable('jobs').addColumn(name, type as 'text', (c) =>
          fallback === null ? c : c.notNull().defaultTo(fallback)).execute();
      }
      const taskColumns: Array<[string, string, string | number | null]> = [
        ['account_id', 'text', ''], ['kind', 'text', 'task'], ['priority', 'integer', 0], ['payload', 'text', '{}'],
        ['item', 'text', 'null'], ['runner_command', 'text', null], ['attempt', 'integer', 0],
        ['available_at', 'text', ''], ['queue_deadline', 'text', null], ['worker_id', 'text', null],
        ['lease_token', 'text', null], ['lease_expires_at', 'text', null], ['cancel_requested', 'integer', 0],
        ['exit_code', 'integer', null], ['error', 'text', null], ['output', 'text', ''], ['output_tail', 'text', ''],
        ['latest_progress', 'text', null], ['result', 'text', null], ['result_quality', 'real', null],
        ['result_warnings', 'text', '[]'], ['duration_ms', 'integer', null], ['cold_start', 'text', null],
        ['node', 'text', null], ['meta', 'text', '{}'],
      ];
      for (const [name, type, fallback] of taskColumns) {
        await db.schema.alterTable('tasks').addColumn(name, type as 'text', (c) =>
          fallback === null ? c : c.notNull().defaultTo(fallback)).execute();
      }
      await sql`create index tasks_queue on tasks (priority desc, available_at, id) where status = 'queued'`.execute(db);
      await sql`create index tasks_leases on tasks (lease_expires_at) where status in ('preparing', 'running')`.execute(db);
      await db.schema.createIndex('tasks_job_status').on('tasks').columns(['job_id', 'status']).execute();
      await db.schema.createIndex('jobs_account_created').on('jobs').columns(['account_id', 'id']).execute();
      await db.schema.createTable('attempts')
        .addColumn('task_id', 'text', (c) => c.notNull())
        .addColumn('attempt', 'integer', (c) => c.notNull())
        .addColumn('job_id', 'text', (c) => c.notNull())
        .addColumn('worker_id', 'text', (c) => c.notNull())
        .addColumn('node', 'text', (c) => c.notNull())
        .addColumn('status', 'text', (c) => c.notNull())
        .addColumn('exit_code', 'integer')
        .addColumn('error', 'text')
        .addColumn('started_at', 'text')
        .addColumn('finished_at', 'text')
        .addPrimaryKeyConstraint('attempts_pk', ['task_id', 'attempt'])
        .execute();
      await db.schema.createIndex('attempts_job').on('attempts').columns(['job_id']).execute();
      await db.schema.createTable('idempotency_keys')
        .addColumn('account_id', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('request_hash', 'text', (c) => c.notNull())
        .addColumn('job_id', 'text', (c) => c.notNull())
        .addColumn('created_at', 'text', (c) => c.notNull())
        .addPrimaryKeyConstraint('idempotency_keys_pk', ['account_id', 'key'])
        .execute();
    },
  };
}
