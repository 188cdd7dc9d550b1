/**
 * The database a test runs on: SQLite in the test's data dir (default), or, when the suite's PostgreSQL
 * pass sets COMPUTALOT_TEST_STORE=postgres, a fresh PostgreSQL database made for this test and dropped
 * after it.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const storeKind = (): 'sqlite' | 'postgres' =>
  process.env.COMPUTALOT_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite';

const adminUrl = () => process.env.COMPUTALOT_TEST_PG_URL ?? 'postgres://computalot:computalot@127.0.0.1:5432/postgres';

export interface TestDatabase { url: string | null; drop(): Promise<void> }

export async function testDatabase(): Promise<TestDatabase> {
  if (storeKind() === 'sqlite') return { url: null, drop: async () => undefined };
  const name = `computalot_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client(adminUrl());
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const c = new pg.Client(adminUrl());
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
