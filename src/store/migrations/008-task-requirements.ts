/**
 * Placement by `requirements` (SPEC §6 minimums, core/worker-fit.ts): each task keeps its job's minimums
 * in columns of its own, so the lease compares them with the worker's capacity while it reads the tasks
 * table alone, in its queue index's order (migration 003). Null: no minimum stated. Queued tasks of jobs
 * submitted before this migration get their job's minimums.
 */
import { sql, type Kysely, type Migration } from 'kysely';

const COLUMNS = [['min_cpu', 'cpu'], ['min_memory_gb', 'memory_gb'], ['min_storage_gb', 'storage_gb'], ['min_gpu_count', 'gpu_count']] as const;

export function taskRequirementsMigration(dialect: 'sqlite' | 'postgres'): Migration {
  return {
    async up(db: Kysely<any>) {
      for (const [column] of COLUMNS) await db.schema.alterTable('tasks').addColumn(column, 'real').execute();
      await backfillQueuedRequirements(db, dialect);
    },
  };
}

/** Queued tasks get their job's minimums (a job's `requirements` is JSON text; only numbers count). */
export async function backfillQueuedRequirements(db: Kysely<any>, dialect: 'sqlite' | 'postgres'): Promise<void> {
  for (const [column, key] of COLUMNS) {
    const value = dialect === 'postgres'
      ? sql`(select (j.requirements::jsonb->>${key})::real from jobs j where j.id = tasks.job_id and jsonb_typeof(j.requirements::jsonb->${key}) = 'number')`
      : sql`(select json_extract(j.requirements, ${'$.' + key}) from jobs j where j.id = tasks.job_id and json_type(j.requirements, ${'$.' + key}) in ('integer', 'real'))`;
    await sql`update tasks set ${sql.ref(column)} = ${value} where status = 'queued'`.execute(db);
  }
}
