/**
 * Opens the database behind the store: embedded SQLite (WAL, one writer) by default, PostgreSQL when a
 * `postgres://` URL is given. Runs the migrations before anything else touches the schema.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration } from 'kysely';
import pg from 'pg';
import type { Database } from './db-types.js';
import { usePreparedStatements } from './pg-prepared.js';
import { loadColumnTypes, type ColumnTypes } from './pg-bulk.js';
import type { SqliteStatements } from './sqlite-rows.js';
import { SqliteInlinePlugin } from './sqlite-inline.js';
import { initialMigration } from './migrations/001-initial.js';
import { jobsMigration } from './migrations/002-jobs.js';
import { taskProfileMigration } from './migrations/003-task-profile.js';
import { sweepIndexesMigration } from './migrations/004-sweep-indexes.js';
import { accountQueueIndexMigration } from './migrations/005-account-queue-index.js';
import { runningTasksCapMigration } from './migrations/006-running-tasks-cap.js';
import { fairShareIndexMigration } from './migrations/007-fair-share-index.js';
import { taskRequirementsMigration } from './migrations/008-task-requirements.js';

export type DialectName = 'sqlite' | 'postgres';

/**
 * PostgreSQL: what this process's last lease saw, so that the next one runs the statement the queue needs
 * (jobs-lease-postgres.ts). SQLite reads both on every lease; there they are not used.
 */
export interface LeaseHints {
  /** An account had a running_tasks cap (a lease, or a quota set here): leases lock the capped accounts before they count. */
  caps: boolean;
  /** More than one (account, project) had tasks queued: leases go in the fair order (core/fair-share.ts). */
  shared: boolean;
}

export interface Connection {
  db: Kysely<Database>;
  dialect: DialectName;
  /** PostgreSQL only: the pool, for LISTEN/NOTIFY. */
  pool: pg.Pool | null;
  /** PostgreSQL only: the tables' column types, for bulk inserts (pg-bulk.ts). */
  columnTypes: ColumnTypes | null;
  /** SQLite only: the connection's cached prepared statements, for bulk inserts in a transaction (sqlite-rows.ts). */
  sqlite: SqliteStatements | null;
  /** PostgreSQL: what the last lease saw of the queue, to pick the next lease's statement (LeaseHints). */
  leaseHints: LeaseHints;
  close(): Promise<void>;
}

// bigint (int8) columns hold byte counts and event ids, all far below 2^53.
pg.types.setTypeParser(20, (value) => Number(value));

export async function connect(opts: { databaseUrl?: string | null; sqlitePath: string }): Promise<Connection> {
  const url = opts.databaseUrl ?? null;
  let conn: Connection;
  if (url && /^postgres(ql)?:\/\//.test(url)) {
    const pool = new pg.Pool({ connectionString: url, max: 10 });
    // An idle pooled connection can fail (PostgreSQL restarted, the database dropped): pg then emits
    // 'error' on the pool, which would crash the process without a listener. The next query reconnects.
    pool.on('error', () => undefined);
    usePreparedStatements(pool);
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    conn = { db, dialect: 'postgres', pool, columnTypes: null, sqlite: null, leaseHints: { caps: true, shared: false }, close: () => db.destroy() };
  } else {
    if (opts.sqlitePath !== ':memory:') mkdirSync(dirname(opts.sqlitePath), { recursive: true });
    const database = new BetterSqlite3(opts.sqlitePath);
    database.pragma('journal_mode = WAL');
    database.pragma('synchronous = NORMAL');
    // Checkpoint every ~40 MB of WAL instead of SQLite's ~4 MB: a checkpoint (in the committing thread)
    // copies each changed page once and fsyncs twice however many commits it covers, so ten times fewer
    // of them cost less. Alternating runs, 10 concurrent single submits: 9.4–10.3k/s and p99 5 ms at the
    // default, 11.0–11.4k/s and p99 2–3 ms here (docs/decisions.md). The WAL file keeps that size on disk.
    database.pragma('wal_autocheckpoint = 10000');
    database.pragma('busy_timeout = 5000');
    database.pragma('foreign_keys = ON');
    const statements = withStatementCache(database);
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: statements }), plugins: [new SqliteInlinePlugin()] });
    conn = { db, dialect: 'sqlite', pool: null, columnTypes: null, sqlite: statements, leaseHints: { caps: false, shared: false }, close: () => db.destroy() };
  }
  await migrate(conn);
  if (conn.dialect === 'postgres') conn.columnTypes = await loadColumnTypes(conn.db);
  return conn;
}

/**
 * Kysely prepares every query afresh; on the hot paths (lease, report) SQLite's prepare cost as much as the
 * query itself (CPU profile: 5.8 % prepare vs 7.7 % execute). The same SQL text reuses its statement.
 * Safe because Kysely runs statements to completion synchronously (no open iterators here).
 */
function withStatementCache(database: BetterSqlite3.Database) {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => database.close(),
    prepare(sql: string) {
      let statement = cache.get(sql);
      if (!statement) {
        statement = database.prepare(sql);
        if (cache.size >= 1000) cache.clear();
        cache.set(sql, statement);
      }
      return statement;
    },
  };
}

function migrations(dialect: DialectName): Record<string, Migration> {
  return { '001-initial': initialMigration(dialect), '002-jobs': jobsMigration(dialect), '003-task-profile': taskProfileMigration(), '004-sweep-indexes': sweepIndexesMigration(),
    '005-account-queue-index': accountQueueIndexMigration(), '006-running-tasks-cap': runningTasksCapMigration(dialect),
    '007-fair-share-index': fairShareIndexMigration(),
    '008-task-requirements': taskRequirementsMigration(dialect) };
}

async function migrate(conn: Connection): Promise<void> {
  const migrator = new Migrator({
    db: conn.db,
    provider: { getMigrations: async () => migrations(conn.dialect) },
    migrationTableName: 'schema_migrations',
    migrationLockTableName: 'schema_migrations_lock',
  });
  const { error } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
}
