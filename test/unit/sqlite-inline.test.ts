/** The SQLite plugin that writes limits and state names into statements (src/store/sqlite-inline.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, sql, SqliteDialect } from 'kysely';
import type { Database } from '../../src/store/db-types.js';
import { SqliteInlinePlugin, stateList } from '../../src/store/sqlite-inline.js';

const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: new BetterSqlite3(':memory:') }), plugins: [new SqliteInlinePlugin()] });

describe('SqliteInlinePlugin', () => {
  it('writes LIMIT and OFFSET integers into the statement', () => {
    const q = db.selectFrom('tasks').select('id').where('job_id', '=', 'j').orderBy('idx').limit(50).offset(100).compile();
    assert.equal(q.sql, 'select "id" from "tasks" where "job_id" = ? order by "idx" limit 50 offset 100');
    assert.deepEqual(q.parameters, ['j']);
  });

  it('writes state names compared with a status column, alone or in a list, and with a table', () => {
    const q = db.selectFrom('tasks').select('id').where('status', '=', 'queued').where('tasks.status', 'in', ['preparing', 'running']).compile();
    assert.equal(q.sql, `select "id" from "tasks" where "status" = 'queued' and "tasks"."status" in ('preparing', 'running')`);
    assert.deepEqual(q.parameters, []);
    const or = db.selectFrom('tasks').select('id').where((eb) => eb.or([eb('status', '=', 'queued'), eb('status', '=', 'failed')])).where('job_id', '=', 'j').compile();
    assert.equal(or.sql, `select "id" from "tasks" where ("status" = 'queued' or "status" = 'failed') and "job_id" = ?`);
  });

  it('keeps bound what is not a state, what is not compared with status, and the values a statement sets', () => {
    const filter = db.selectFrom('jobs').select('id').where('status', '=', "x' or 1=1 --").compile();
    assert.equal(filter.sql, 'select "id" from "jobs" where "status" = ?');
    const mixed = db.selectFrom('tasks').select('id').where('status', 'in', ['queued', 'nonsense']).compile();
    assert.deepEqual(mixed.parameters, ['queued', 'nonsense'], 'a list with anything else stays bound whole');
    const other = db.selectFrom('tasks').select('id').where('status_reason', '=', 'queued').compile();
    assert.deepEqual(other.parameters, ['queued']);
    const update = db.updateTable('tasks').set({ status: 'running' }).where('status', '=', 'preparing').compile();
    assert.equal(update.sql, `update "tasks" set "status" = ? where "status" = 'preparing'`);
    assert.deepEqual(update.parameters, ['running']);
  });

  it('stateList writes states for raw statements and refuses anything else', () => {
    assert.equal(sql`status in (${stateList(['preparing', 'running'])})`.compile(db).sql, `status in ('preparing', 'running')`);
    assert.throws(() => stateList(['running', "x'"]), /is not a state/);
  });
});
