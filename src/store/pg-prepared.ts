/**
 * Named prepared statements for the PostgreSQL hot path. Kysely sends every query unnamed, so PostgreSQL
 * parses and plans it each time; for the lease (jobs-lease-postgres.ts, a chain of CTEs) planning was
 * 0.35 ms of its 0.4 ms (pg_stat_statements with track_planning). A statement whose text starts with
 * PREPARED is sent under a name derived from its text, so each pooled connection parses it once, and
 * plans it once whenever PostgreSQL settles on a generic plan (measured: 35 plans in 373 leases during a
 * dispatch run; a fan-out run still planned most leases, PostgreSQL keeping custom plans there).
 *
 * Only marked statements: their texts are fixed (no IN-lists or VALUES batches of varying length), so the
 * number of names per connection stays small and bounded.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';

export const PREPARED = '/* prepared */';

/** prefix → text → name. Keyed by the text itself: a compiled-once text (pg-template.ts) is the same string each call, whose hash V8 keeps. */
const names = new Map<string, Map<string, string>>();

/**
 * The name a marked statement is prepared under, or null for an unmarked one. `prefix` keeps apart two
 * users of one connection that track what they parsed separately (node-postgres, pg-pipeline.ts).
 */
export function preparedName(text: string, prefix = 'computalot_'): string | null {
  if (!text.startsWith(PREPARED)) return null;
  let byText = names.get(prefix);
  if (!byText) names.set(prefix, byText = new Map());
  let name = byText.get(text);
  if (!name) {
    name = `${prefix}${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
    byText.set(text, name);
  }
  return name;
}

export function usePreparedStatements(pool: pg.Pool): void {
  pool.on('connect', (client) => {
    const query = client.query.bind(client) as (...args: unknown[]) => unknown;
    // Kysely calls query(text, values); marked texts go as a named query config instead.
    (client as unknown as { query: (...args: unknown[]) => unknown }).query = (text: unknown, ...rest: unknown[]) => {
      const name = typeof text === 'string' ? preparedName(text) : null;
      return name ? query({ name, text, values: rest[0] }, ...rest.slice(1)) : query(text, ...rest);
    };
  });
}
