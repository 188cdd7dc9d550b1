/**
 * The queued_tasks quota (SPEC §11) counts an account's queued tasks at each submit of an account that
 * has one: a partial index of queued tasks by account keeps that count to the account's own queue.
 */
import { sql, type Kysely, type Migration } from 'kysely';

export function accountQueueIndexMigration(): Migration {
  return {
    async up(db: Kysely<any>) {
      await sql`create index tasks_account_queued on tasks (account_id) where status = 'queued'`.execute(db);
    },
  };
}
