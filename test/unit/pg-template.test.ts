/**
 * Statements compiled once (src/store/pg-template.ts): each call's values land where a fresh compile would
 * put them, and the check the test suite turns on catches a value taken from outside the slots.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DummyDriver, Kysely, PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler, sql } from 'kysely';
import { fixedStatement } from '../../src/store/pg-template.js';

// Compiles PostgreSQL text without a server.
const db = new Kysely<any>({
  dialect: {
    createAdapter: () => new PostgresAdapter(),
    createDriver: () => new DummyDriver(),
    createIntrospector: (k) => new PostgresIntrospector(k),
    createQueryCompiler: () => new PostgresQueryCompiler(),
  },
});

describe('fixedStatement', () => {
  it('puts each call\'s values where a fresh compile puts them, constants included', () => {
    const build = ([a, b]: readonly unknown[]) => sql`select ${a}::int as a, ${'const'} as c, ${b}::text as b, ${a}::int as a2`;
    for (const values of [[1, 'x'], [2, 'y'], [3, null]]) {
      const fixed = fixedStatement(db, 'test-places', values, build);
      const fresh = build(values).compile(db);
      assert.equal(fixed.sql, fresh.sql);
      assert.deepEqual(fixed.parameters, fresh.parameters);
    }
    assert.deepEqual(fixedStatement(db, 'test-places', [7, 'z'], build).parameters, [7, 'const', 'z', 7]);
  });

  it('with COMPUTALOT_CHECK_TEMPLATES=1, a value from outside the slots is caught on the next call', () => {
    const previous = process.env.COMPUTALOT_CHECK_TEMPLATES;
    process.env.COMPUTALOT_CHECK_TEMPLATES = '1';
    try {
      let outside = 'first';
      const build = ([a]: readonly unknown[]) => sql`select ${a}::int, ${outside}::text`;
      fixedStatement(db, 'test-outside', [1], build);
      outside = 'second';
      assert.throws(() => fixedStatement(db, 'test-outside', [2], build), /differs from a fresh compile/);
    } finally {
      if (previous === undefined) delete process.env.COMPUTALOT_CHECK_TEMPLATES;
      else process.env.COMPUTALOT_CHECK_TEMPLATES = previous;
    }
  });

  it('refuses a placeholder written into the text instead of passed as a value', () => {
    assert.throws(() => fixedStatement(db, 'test-raw', ['users'], ([t]) => sql`select * from ${sql.raw(String(t))}`), /written into the text/);
  });
});
