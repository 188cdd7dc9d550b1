/**
 * Batches as one statement: `UPDATE t SET … FROM (VALUES (…), (…)) AS v WHERE t.id = v.column1 …` updates
 * a whole batch of rows with their own values. On PostgreSQL each statement is a network round trip, so
 * the worker-report path (starts, live feedback, ends) costs the same few statements for 1 task or 50.
 *
 * Both dialects name a VALUES list's columns column1…columnN. PostgreSQL types a bare parameter there as
 * text, so every non-text column is cast to its column's type.
 */
import { sql, type RawBuilder } from 'kysely';

export type SqlType = 'text' | 'integer' | 'real';

export function valuesTable(alias: string, types: readonly SqlType[], rows: ReadonlyArray<readonly unknown[]>): RawBuilder<unknown> {
  const row = (values: readonly unknown[]) => sql`(${sql.join(values.map((v, i) => {
    const type = types[i]!;
    return type === 'text' ? sql`${v}` : sql`cast(${v} as ${sql.raw(type)})`;
  }))})`;
  return sql`(values ${sql.join(rows.map(row))}) as ${sql.raw(alias)}`;
}

/**
 * Splits a batch into consecutive runs where no key repeats, so a joined UPDATE never meets two rows for
 * one target row (which row would win is undefined); in practice a batch is one run.
 */
export function uniqueRuns<T>(items: readonly T[], key: (item: T) => string): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let seen = new Set<string>();
  for (const item of items) {
    const k = key(item);
    if (seen.has(k)) {
      runs.push(run);
      run = [];
      seen = new Set();
    }
    seen.add(k);
    run.push(item);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
