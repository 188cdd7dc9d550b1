/**
 * The running_tasks quota (SPEC §11) is applied by every lease: an account at its cap gets no more tasks
 * leased until one of its tasks ends. The cap is kept in a column of its own, beside the quotas' JSON, so
 * the lease finds the capped accounts through a partial index (nothing to read when no account has one)
 * instead of parsing every account's quotas on every lease.
 */
import { sql, type Kysely, type Migration } from 'kysely';

export function runningTasksCapMigration(dialect: 'sqlite' | 'postgres'): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable('accounts').addColumn('running_tasks_cap', 'integer').execute();
      await (dialect === 'postgres'
        ? sql`update accounts set running_tasks_cap = (quotas::jsonb->>'running_tasks')::integer where jsonb_typeof(quotas::jsonb->'running_tasks') = 'number'`
        : sql`update accounts set running_tasks_cap = json_extract(quotas, '$.running_tasks') where json_type(quotas, '$.running_tasks') = 'integer'`).execute(db);
      await sql`create index accounts_running_cap on accounts (id) where running_tasks_cap is not null`.execute(db);
    },
  };
}
