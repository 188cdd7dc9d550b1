/** SQLite bulk inserts through one prepared single-row statement (src/store/sqlite-rows.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { insertRows } from '../../src/store/sqlite-rows.js';

function database() {
  const db = new BetterSqlite3(':memory:');
  db.exec('create table events (id integer primary key autoincrement, type text not null, data text)');
  let prepared = 0;
  const statements = { prepare: (text: string) => { prepared += 1; return db.prepare(text); } };
  return { db, statements, prepared: () => prepared };
}

describe('insertRows (SQLite)', () => {
  it('inserts every row in order and answers the last rowid', () => {
    const { db, statements } = database();
    const rows = Array.from({ length: 2_500 }, (_, i) => ({ type: `t${i}`, data: i % 2 ? null : '{}' }));
    assert.equal(insertRows(statements, 'events', rows), 2_500);
    const stored = db.prepare('select id, type, data from events order by id').all() as Array<{ id: number; type: string; data: string | null }>;
    assert.equal(stored.length, 2_500);
    assert.deepEqual(stored[0], { id: 1, type: 't0', data: '{}' });
    assert.deepEqual(stored[2_499], { id: 2_500, type: 't2499', data: null });
    assert.equal(insertRows(statements, 'events', []), 0, 'nothing to insert: no statement, 0');
  });

  it('is part of the caller\'s transaction: a rollback takes the rows back', () => {
    const { db, statements } = database();
    db.exec('begin');
    insertRows(statements, 'events', [{ type: 'a', data: null }, { type: 'b', data: null }]);
    db.exec('rollback');
    assert.equal((db.prepare('select count(*) as n from events').get() as { n: number }).n, 0);
  });

  it('refuses a row without a value the first row has, instead of storing NULL', () => {
    const { db, statements } = database();
    assert.throws(() => insertRows(statements, 'events', [{ type: 'a', data: '{}' }, { type: 'b' }]), /events\.data is missing/);
    db.close();
  });

  it('prepares one statement per call, not one per row', () => {
    const { statements, prepared } = database();
    insertRows(statements, 'events', Array.from({ length: 10 }, () => ({ type: 'x', data: null })));
    assert.equal(prepared(), 1);
  });
});
