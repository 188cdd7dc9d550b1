/**
 * Several statements in one network round trip and one transaction, on PostgreSQL.
 *
 * The extended query protocol lets a client send Parse/Bind/Execute for several statements and then one
 * Sync: the server runs them in order, in one implicit transaction committed at the Sync, and a failing
 * statement rolls back all of them and skips the rest (PostgreSQL docs, "Pipelining" in the protocol
 * chapter). Each statement sees what the earlier ones wrote. node-postgres sends a Sync after every
 * statement, so this goes through its documented extension point instead: an object with `submit`
 * handed to `client.query` (the way pg-cursor drives the protocol), using node-postgres's own value
 * mapping and row parsing.
 *
 * Why: a submit's direct dispatch is an insert and then a lease that must see the inserted tasks. As one
 * transaction that was BEGIN, insert, lease, COMMIT (four round trips); as two autocommitted statements,
 * two round trips and a window where another worker could take the new tasks. Pipelined: one round trip,
 * one transaction.
 *
 * Statements marked PREPARED (pg-prepared.ts: fixed texts, so their number stays bounded) are named and
 * parsed once per connection, under names of their own so node-postgres's record of what it parsed is
 * never contradicted; others go as the unnamed statement, parsed each time. After an error the
 * connection is released as broken: which of its statements were parsed is then unknown, and the pool
 * opens a fresh one.
 */
import pg from 'pg';
import pgUtils from 'pg/lib/utils.js';
import type { CompiledQuery, Kysely, RawBuilder } from 'kysely';
import { preparedName } from './pg-prepared.js';

type Row = Record<string, unknown>;

/** What node-postgres hands a submittable: the protocol writer (pg/lib/connection.js). */
interface ProtocolConnection {
  stream: { cork?: () => void; uncork?: () => void };
  parse(message: { text: string; name: string; types: unknown[] }): void;
  bind(message: { portal: string; statement: string; values: unknown[]; valueMapper: (value: unknown) => unknown }): void;
  describe(message: { type: 'P'; name: string }): void;
  execute(message: { portal: string; rows: number }): void;
  sync(): void;
}

interface FieldParser {
  addFields(fields: unknown[]): void;
  parseRow(fields: unknown[]): Row;
}

/** node-postgres's result builder: field descriptions in, typed rows out (pg/lib/result.js). */
const Result = (pg as unknown as { Result: new () => FieldParser }).Result;

const parsedBy = new WeakMap<pg.PoolClient, Set<string>>();

class Pipeline {
  readonly done: Promise<Row[][]>;
  private resolve!: (results: Row[][]) => void;
  private reject!: (error: unknown) => void;
  private readonly results: Row[][] = [];
  private rows: Row[] = [];
  private parser: FieldParser | null = null;
  private failed = false;

  constructor(
    private readonly statements: ReadonlyArray<{ name: string; text: string; values: readonly unknown[] }>,
    private readonly parsed: Set<string>,
    private readonly newParser: () => FieldParser,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  submit(connection: ProtocolConnection): null {
    connection.stream.cork?.();
    try {
      for (const statement of this.statements) {
        if (statement.name === '' || !this.parsed.has(statement.name)) {
          connection.parse({ text: statement.text, name: statement.name, types: [] });
          if (statement.name !== '') this.parsed.add(statement.name);
        }
        connection.bind({ portal: '', statement: statement.name, values: [...statement.values], valueMapper: pgUtils.prepareValue });
        connection.describe({ type: 'P', name: '' });
        connection.execute({ portal: '', rows: 0 });
      }
      connection.sync();
    } finally {
      connection.stream.uncork?.();
    }
    return null;
  }

  handleRowDescription(message: { fields: unknown[] }): void {
    this.parser = this.newParser();
    this.parser.addFields(message.fields);
  }

  handleDataRow(message: { fields: unknown[] }): void {
    this.rows.push(this.parser!.parseRow(message.fields));
  }

  handleCommandComplete(): void {
    this.results.push(this.rows);
    this.rows = [];
    this.parser = null;
  }

  handleEmptyQuery(): void {}

  handleError(error: unknown): void {
    this.failed = true;
    this.reject(error);
  }

  handleReadyForQuery(): void {
    if (!this.failed) this.resolve(this.results);
  }

  handlePortalSuspended(): void {}
  handleCopyInResponse(): void {}
  handleCopyData(): void {}
}

/**
 * Runs the statements in one round trip and one transaction on a pooled connection; the rows each one
 * returned, in order. Throws the first statement error (nothing of the transaction stays).
 */
export async function pipeline(pool: pg.Pool, db: Kysely<any>, statements: ReadonlyArray<RawBuilder<unknown> | CompiledQuery<unknown>>): Promise<Row[][]> {
  const compiled = statements.map((statement) => {
    const query = 'compile' in statement ? statement.compile(db) : statement;
    return { name: preparedName(query.sql, 'computalot_pl_') ?? '', text: query.sql, values: query.parameters };
  });
  const client = await pool.connect();
  let parsed = parsedBy.get(client);
  if (!parsed) parsedBy.set(client, parsed = new Set());
  const run = new Pipeline(compiled, parsed, () => new Result());
  try {
    (client as unknown as { query(submittable: Pipeline): unknown }).query(run);
    const results = await run.done;
    client.release();
    return results;
  } catch (error) {
    client.release(error instanceof Error ? error : new Error(String(error)));
    throw error;
  }
}
