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
      // Bounded: a test run once hung for good here, its admin connection idle after the DROP had run
      // (seen in a CI run while other test runs shared the cluster). A database left behind is harmless
      // (uniquely named); a hung hook is not.
      const c = new pg.Client({ connectionString: adminUrl(), query_timeout: 30_000, connectionTimeoutMillis: 30_000 });
      let timer: NodeJS.Timeout | undefined;
      const limit = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), 30_000); });
      const work = (async () => {
        await c.connect();
        for (let attempt = 1; ; attempt += 1) {
          try {
            await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
            return;
          } catch (error) {
            // 42501: FORCE may not terminate an autovacuum worker busy in the database (it has no role
            // this one is a member of; seen in CI). It ends on its own in a moment.
            if ((error as { code?: string }).code !== '42501' || attempt >= 40) throw error;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
      })();
      work.catch(() => undefined); // awaited below, unless the time limit wins and it is left behind
      try {
        if ((await Promise.race([work.then(() => 'done' as const), limit])) === 'done') await work;
      } finally {
        clearTimeout(timer);
        await Promise.race([c.end().catch(() => undefined), new Promise((r) => setTimeout(r, 1_000))]);
      }
    },
  };
}
