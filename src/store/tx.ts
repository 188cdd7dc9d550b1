/**
 * One transaction per change, with its events (the outbox). `inTx` runs the change, then appends the
 * events it recorded in the same transaction, so an event exists exactly when its change does.
 *
 * PostgreSQL hands out sequence numbers before commit, so ids may commit out of order; readers stop at
 * the high-water mark (high-water.ts) instead of serialising writers. For its reasoning to hold, the
 * transaction must own an xid before it takes an event id: hence pg_current_xact_id() first, unless a
 * statement of the transaction already changed a row (TxContext.hasXid).
 */
import { sql, type Kysely } from 'kysely';
import { nowIso } from '../core/clock.js';
import type { Connection, LeaseHints } from './connect.js';
import type { Database } from './db-types.js';
import { NOTIFY_CHANNEL, WORK_CHANNEL, type EventFeed } from './event-feed.js';
import { bulkInsert, type ColumnTypes } from './pg-bulk.js';
import { insertRows, type SqliteStatements } from './sqlite-rows.js';

export interface EventInput {
  type: string;
  accountId: string;
  projectId?: string | null;
  jobId?: string | null;
  data: Record<string, unknown>;
}

/** A transaction, or for a change that is one statement on PostgreSQL the pool itself (inStatement). */
export type Tx = Kysely<Database>;

export class TxContext {
  readonly events: EventInput[] = [];
  /** Set by changes that make tasks leasable (new, requeued): workers are told after the commit. */
  workAdded = false;
  /**
   * Set after a statement that changed at least one row, which gave a PostgreSQL transaction its xid: the
   * event append then skips its own pg_current_xact_id() round trip (see appendEvents). Unset is safe.
   */
  hasXid = false;
  /** The last event id a statement of this transaction wrote itself (createJobs on PostgreSQL), if any. */
  lastEventId = 0;
  /** The work NOTIFY went out with such a statement: the commit only has to wake this process's workers. */
  workNotified = false;
  constructor(
    readonly tx: Tx, readonly dialect: Connection['dialect'], readonly leaseSeconds: number,
    /** PostgreSQL: column types for bulk inserts (pg-bulk.ts). */
    readonly columnTypes: ColumnTypes | null = null,
    /** SQLite, inside a transaction: the connection's statements, for bulk inserts (sqlite-rows.ts). */
    readonly sqlite: SqliteStatements | null = null,
    /** PostgreSQL: what the last lease saw of the queue (Connection.leaseHints). */
    readonly leaseHints: LeaseHints | null = null,
  ) {}
  emit(event: EventInput): void {
    this.events.push(event);
  }

  addWork(): void {
    this.workAdded = true;
  }
}

export interface StoreContext {
  conn: Connection;
  feed: EventFeed;
  /** How long a worker's lease lasts without a heartbeat (SPEC §8: 30 s). */
  leaseSeconds: number;
}

export async function inTx<T>(ctx: StoreContext, fn: (t: TxContext) => Promise<T>): Promise<T> {
  let lastId = 0;
  let work = false;
  const value = await ctx.conn.db.transaction().execute(async (tx) => {
    const t = new TxContext(tx, ctx.conn.dialect, ctx.leaseSeconds, ctx.conn.columnTypes, ctx.conn.sqlite, ctx.conn.leaseHints);
    const result = await fn(t);
    work = t.workAdded;
    const notifyWork = work && !t.workNotified;
    if (t.events.length > 0) lastId = await appendEvents(t, notifyWork);
    else if (notifyWork && t.dialect === 'postgres') await sql`select pg_notify(${WORK_CHANNEL}, '')`.execute(t.tx);
    lastId = Math.max(lastId, t.lastEventId);
    return result;
  });
  if (lastId > 0) ctx.feed.wake(lastId);
  // Only changes that add leasable tasks wake workers: a lease or a report never makes a worker lease again.
  if (work) ctx.feed.signalWork();
  return value;
}

/**
 * PostgreSQL: a change that is a single statement writing its own events and NOTIFYs (a lease on its
 * own) runs without BEGIN and COMMIT: outside a transaction block the statement is its own
 * transaction, atomic all the same, for two network round trips fewer. Each statement `fn` sends through
 * `t.tx` must be a whole change on its own (a lease that leases again past a capped account's tasks sends
 * a second, complete lease), and `fn` must leave no events for the commit to append (it throws if it
 * does: that is a bug, and the statements have committed by then).
 */
export async function inStatement<T>(ctx: StoreContext, fn: (t: TxContext) => Promise<T>): Promise<T> {
  const t = new TxContext(ctx.conn.db, ctx.conn.dialect, ctx.leaseSeconds, ctx.conn.columnTypes, null, ctx.conn.leaseHints);
  const result = await fn(t);
  if (t.events.length > 0 || (t.workAdded && !t.workNotified)) {
    throw new Error('inStatement: the statement left events or a work NOTIFY for a commit that never comes');
  }
  if (t.lastEventId > 0) ctx.feed.wake(t.lastEventId);
  if (t.workAdded) ctx.feed.signalWork();
  return result;
}

/** Event inputs as rows of the events table. */
export function eventRows(events: readonly EventInput[]) {
  const createdAt = nowIso();
  return events.map((e) => ({
    account_id: e.accountId,
    project_id: e.projectId ?? null,
    job_id: e.jobId ?? null,
    type: e.type,
    data: JSON.stringify(e.data),
    created_at: createdAt,
  }));
}

/** Appends the events (and on PostgreSQL sends the NOTIFYs, the work one when `work`); the last id. */
async function appendEvents(t: TxContext, work: boolean): Promise<number> {
  const rows = eventRows(t.events);
  if (t.dialect === 'sqlite') {
    if (!t.sqlite) throw new Error('appendEvents: a SQLite transaction without its statements');
    return insertRows(t.sqlite, 'events', rows);
  }
  if (!t.hasXid) await sql`select pg_current_xact_id()`.execute(t.tx);
  // The insert and both NOTIFYs in one statement (one round trip instead of three).
  const notifyWork = work ? sql`, pg_notify(${WORK_CHANNEL}, '')` : sql``;
  const { rows: [top] } = await sql<{ id: string }>`
    with inserted as (${bulkInsert(t.columnTypes!, 'events', rows)} returning id)
    select max(id) as id, pg_notify(${NOTIFY_CHANNEL}, max(id)::text)${notifyWork} from inserted`.execute(t.tx);
  return Number(top!.id);
}
