/**
 * Fair sharing between accounts and projects (SPEC §8, core/fair-share.ts) reads the queue per (account,
 * project): which pairs have queued tasks (a skip over this index, one probe per pair), and each pair's
 * next tasks in its own queue order. This partial index serves both, and replaces migration 005's
 * queued-by-account index: the queued_tasks quota's count by account reads its first column.
 */
import { sql, type Kysely, type Migration } from 'kysely';

export function fairShareIndexMigration(): Migration {
  return {
    async up(db: Kysely<any>) {
      await sql`create index tasks_group_queue on tasks (account_id, project_id, profile, priority desc, available_at, id) where status = 'queued'`.execute(db);
      await sql`drop index tasks_account_queued`.execute(db);
    },
  };
}
