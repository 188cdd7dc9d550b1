/**
 * Statements with a fixed text, compiled by Kysely once: later calls only put their values in.
 *
 * Why: Kysely builds and compiles a statement on every call (it freezes and visits every node, then joins
 * the text). For the PostgreSQL hot path's long CTE chains, the submit's insert and the lease, that was
 * ~20 % of the server's busy time under single submits (CPU profile, docs/decisions.md), and the text it
 * produced was the same every time.
 *
 * How: `build` gets one placeholder object per value and must put every value that changes between calls
 * through them (as `${slot}` parameters). The first compile for a key records where each placeholder
 * landed among the parameters; later calls copy that list with the values in those places. Anything else
 * in the text or parameters is frozen at the first compile, so a key must name everything that shapes
 * the text (which columns, which optional parts). A value that `build` takes from elsewhere than its
 * slots would be frozen: with COMPUTALOT_CHECK_TEMPLATES=1 (the test suite sets it) every call also
 * compiles `build` with the real values and throws when the two statements differ.
 */
import { isDeepStrictEqual } from 'node:util';
import { CompiledQuery, type Kysely, type RawBuilder } from 'kysely';

interface Template {
  sql: string;
  parameters: unknown[];
  /** For each parameter index, the value index it takes, or -1 for a constant. */
  places: number[];
}

class Placeholder {
  constructor(readonly index: number) {}
}

const templates = new Map<string, Template>();
/** Distinct keys are a handful of statement shapes; more means a caller keys on values: refuse to grow. */
const MAX_TEMPLATES = 256;

export function fixedStatement<R>(db: Kysely<any>, key: string, values: readonly unknown[], build: (slots: readonly unknown[]) => RawBuilder<R>): CompiledQuery<R> {
  let template = templates.get(key);
  if (!template) {
    const slots = values.map((_, i) => new Placeholder(i));
    const compiled = build(slots).compile(db);
    const places = compiled.parameters.map((p) => (p instanceof Placeholder ? p.index : -1));
    if (compiled.sql.includes('[object Object]')) throw new Error(`fixedStatement ${key}: a placeholder was written into the text, not passed as a value`);
    template = { sql: compiled.sql, parameters: [...compiled.parameters], places };
    if (templates.size < MAX_TEMPLATES) templates.set(key, template);
  }
  const parameters = template.parameters.slice();
  for (let i = 0; i < parameters.length; i += 1) {
    const place = template.places[i]!;
    if (place >= 0) parameters[i] = values[place];
  }
  if (process.env.COMPUTALOT_CHECK_TEMPLATES === '1') {
    const fresh = build(values).compile(db);
    if (fresh.sql !== template.sql || !isDeepStrictEqual(fresh.parameters, parameters)) {
      throw new Error(`fixedStatement ${key}: the compiled-once statement differs from a fresh compile (a value outside the slots?)`);
    }
  }
  return CompiledQuery.raw(template.sql, parameters) as CompiledQuery<R>;
}
