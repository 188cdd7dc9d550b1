/**
 * Bulk inserts on PostgreSQL as `INSERT … SELECT … FROM json_to_recordset($1)`: one parameter for all
 * rows instead of one per cell. A batch submit of 1,000 jobs was an insert of ~45,000 parameters that
 * PostgreSQL spent 8.7 ms planning and Kysely ~6 ms compiling (pg_stat_statements, CPU profile); now the
 * statement text no longer grows with the batch (it only depends on which columns a batch of 32 or more
 * rows hoists, see rowsSource).
 *
 * Column types come from the catalog once, after the migrations (`loadColumnTypes`), so a column added by
 * a later migration is typed without touching this file.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';

/** table → column → type (as `format_type` writes it: text, integer, real, bigint, …). */
export type ColumnTypes = Map<string, Map<string, string>>;

export async function loadColumnTypes(db: Kysely<any>): Promise<ColumnTypes> {
  const { rows } = await sql<{ table_name: string; column_name: string; type: string }>`
    select c.relname as table_name, a.attname as column_name, format_type(a.atttypid, a.atttypmod) as type
    from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = current_schema() and c.relkind = 'r' and a.attnum > 0 and not a.attisdropped`.execute(db);
  const types: ColumnTypes = new Map();
  for (const r of rows) {
    let table = types.get(r.table_name);
    if (!table) types.set(r.table_name, table = new Map());
    table.set(r.column_name, r.type);
  }
  return types;
}

/**
 * Rows as a FROM item: `json_to_recordset($1) with ordinality as <alias>(…, ord)`, and for each column
 * of rows[0] the expression that reads it. A column with the same value in every row (a batch's account,
 * project, revision, status, timestamps, most JSON columns) is one typed parameter instead of a field of
 * every row: PostgreSQL spent 10 of a 1,000-job batch insert's 24 ms parsing the rows' JSON (auto_explain),
 * and the JSON V8 writes shrinks as much. The rows travel as one JSON text (V8's JSON.stringify, parsed by
 * PostgreSQL in C). Array parameters were the first try: node-postgres escapes each array element with
 * two regex replaces in JS, which took 40 % of the server's busy time in a batch submit.
 */
/**
 * Fewer rows than this keep every column in the JSON: their JSON is small, and the statement text is then
 * the same for any such batch, so it can be a named prepared statement (jobs-create.ts), which saved
 * PostgreSQL more than hoisting would (single submits, 10 connections: 3.5k → 4k/s).
 */
export const HOIST_MIN_ROWS = 32;

/**
 * `json`: the rows' JSON as a value to put in the statement instead of writing it here (a placeholder of
 * pg-template.ts, for a statement compiled once); nothing is hoisted then, `rows` only names the columns.
 */
export function rowsSource(types: ColumnTypes, table: string, rows: ReadonlyArray<Record<string, unknown>>, alias: string, json?: unknown): {
  from: RawBuilder<unknown>; columns: string[]; values: RawBuilder<unknown>[];
} {
  const columnTypes = types.get(table);
  if (!columnTypes) throw new Error(`unknown table ${table}`);
  const first = rows[0] ?? {};
  const columns = Object.keys(first);
  const typeOf = (column: string) => {
    const type = columnTypes.get(column);
    if (!type) throw new Error(`unknown column ${table}.${column}`);
    return type;
  };
  const constant = new Set(json !== undefined || rows.length < HOIST_MIN_ROWS ? [] : columns.filter((c) => rows.every((r) => r[c] === first[c])));
  const varying = columns.filter((c) => !constant.has(c));
  const definitions = varying.map((c) => sql`${sql.ref(c)} ${sql.raw(typeOf(c))}`);
  const text = json ?? JSON.stringify(varying.length === columns.length ? rows : rows.map((r) => pick(r, varying)));
  const from = sql`rows from (json_to_recordset(${text}::json) as (${sql.join(definitions)})) with ordinality as ${sql.raw(alias)}(${sql.join([...varying, 'ord'].map((c) => sql.ref(c)))})`;
  const values = columns.map((c) => constant.has(c) ? sql`${first[c]}::${sql.raw(typeOf(c))}` : sql.ref(`${alias}.${c}`));
  return { from, columns, values };
}

function pick(row: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) out[key] = row[key];
  return out;
}

/**
 * `INSERT INTO <table> (<columns of rows[0]>) SELECT … FROM <rowsSource> [WHERE <when>]`, every row having
 * the same keys (`json`: as for rowsSource).
 */
export function bulkInsert(types: ColumnTypes, table: string, rows: ReadonlyArray<Record<string, unknown>>, when?: RawBuilder<unknown>, json?: unknown): RawBuilder<unknown> {
  const { from, columns, values } = rowsSource(types, table, rows, 'r', json);
  const where = when ? sql` where ${when}` : sql``;
  return sql`insert into ${sql.table(table)} (${sql.join(columns.map((c) => sql.ref(c)))}) select ${sql.join(values)} from ${from}${where}`;
}
