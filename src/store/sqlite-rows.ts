/**
 * SQLite: many rows into one table as a prepared single-row INSERT run once per row, inside the caller's
 * transaction (better-sqlite3's own advice for bulk inserts). Through Kysely a 1,000-job batch was one
 * 30,000-parameter statement per table: building and compiling it took 17 % of the server's time under
 * batched submits and SQLite parsed it on every call (CPU profile, docs/decisions.md). One statement text
 * per table and column list is prepared once and kept (connect.ts's statement cache).
 *
 * Only inside `inTx` (TxContext.sqlite): the rows go through the store's one connection while the
 * transaction holds it, so they are part of that transaction and nothing else runs between them.
 */
import type BetterSqlite3 from 'better-sqlite3';

/** The store's SQLite connection, as the statement cache in connect.ts hands it out. */
export interface SqliteStatements {
  prepare(sql: string): BetterSqlite3.Statement;
}

/**
 * Inserts `rows`, every one with the keys of the first (our row builders make them so; a missing or
 * undefined value throws rather than turn into NULL), into `table`. Returns the last row's rowid (an
 * INTEGER PRIMARY KEY's value: the events' ids).
 */
export function insertRows(db: SqliteStatements, table: string, rows: readonly Record<string, unknown>[]): number {
  if (rows.length === 0) return 0;
  const columns = Object.keys(rows[0]!);
  const statement = db.prepare(`insert into "${table}" (${columns.map((c) => `"${c}"`).join(', ')}) values (${columns.map(() => '?').join(', ')})`);
  const values: unknown[] = new Array(columns.length);
  let last = 0;
  for (const row of rows) {
    for (let i = 0; i < columns.length; i += 1) {
      const value = row[columns[i]!];
      if (value === undefined) throw new Error(`insertRows: ${table}.${columns[i]} is missing in a row`);
      values[i] = value;
    }
    last = Number(statement.run(values).lastInsertRowid);
  }
  return last;
}
