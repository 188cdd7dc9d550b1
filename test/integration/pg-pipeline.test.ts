/**
 * Pipelined statements on PostgreSQL (src/store/pg-pipeline.ts): one round trip, one transaction. Runs in
 * the PostgreSQL pass (scripts/test.sh); SQLite has no round trips to save and no such path.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { pipeline } from '../../src/store/pg-pipeline.js';
import { PREPARED } from '../../src/store/pg-prepared.js';
import { storeKind, testDatabase, type TestDatabase } from '../helpers/db.js';

if (storeKind() === 'postgres') {
  describe('statement pipelines (postgres)', () => {
    let db: TestDatabase;
    let pool: pg.Pool;
    let kysely: Kysely<any>;
    const count = async () => Number((await pool.query('select count(*) as n from t')).rows[0].n);

    before(async () => {
      db = await testDatabase();
      pool = new pg.Pool({ connectionString: db.url!, max: 1 });
      pool.on('error', () => undefined); // as the store's pool: a dropped idle connection is not a crash
      kysely = new Kysely<any>({ dialect: new PostgresDialect({ pool }) });
      await pool.query('create table t (id int primary key, v text)');
    });
    after(async () => {
      await kysely.destroy();
      await db.drop();
    });

    it('runs the statements in order in one transaction: the second sees what the first wrote', async () => {
      const [inserted, read, none] = await pipeline(pool, kysely, [
        sql`insert into t (id, v) values (${1}, ${'a'}), (${2}, ${null}) returning id`,
        sql`select id, v, (select count(*) from t) as n from t order by id`,
        sql`update t set v = v where false`,
      ]);
      assert.deepEqual(inserted, [{ id: 1 }, { id: 2 }]);
      assert.deepEqual(read, [{ id: 1, v: 'a', n: '2' }, { id: 2, v: null, n: '2' }]);
      assert.deepEqual(none, []);
    });

    it('rolls everything back when a later statement fails, and the pool goes on with a fresh connection', async () => {
      await assert.rejects(pipeline(pool, kysely, [
        sql`insert into t (id, v) values (${3}, ${'b'})`,
        sql`insert into t (id, v) values (${1}, ${'duplicate'})`,
      ]), /duplicate key/);
      assert.equal(await count(), 2, 'the first insert was rolled back with the second');
      const [again] = await pipeline(pool, kysely, [sql`insert into t (id, v) values (${3}, ${'b'}) returning v`]);
      assert.deepEqual(again, [{ v: 'b' }]);
    });

    it('parses a statement marked prepared once per connection and reuses it; unmarked ones stay unnamed', async () => {
      const named = async () => Number((await pool.query(`select count(*) as n from pg_prepared_statements where name like 'computalot_pl_%'`)).rows[0].n);
      await pipeline(pool, kysely, [sql`insert into t (id, v) values (${9}, ${'unmarked'})`]);
      assert.equal(await named(), 0, 'an unmarked statement is not kept on the connection');
      const insert = async (id: number) => (await pipeline(pool, kysely, [sql`${sql.raw(PREPARED)} insert into t (id, v) values (${id}, ${String(id)}) returning id, v`]))[0]![0];
      assert.deepEqual(await insert(10), { id: 10, v: '10' });
      const before = await named();
      assert.equal(before, 1);
      for (let id = 11; id < 15; id += 1) assert.deepEqual(await insert(id), { id, v: String(id) });
      assert.equal(await named(), before, 'the same named statement, parsed once, for the later inserts');
    });
  });
}
