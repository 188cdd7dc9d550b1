/**
 * One transaction per change, with its events (the outbox). `inTx` runs the change, then appends the
 * events it recorded in the same transaction, so an event exists exactly when its change does.
 *
 * PostgreSQL hands out sequence numbers before commit, so ids may commit out of order; readers stop at
 * the high-water mark (high-water.ts) instead of serialising writers. For its reasoning to hold, the
 * transaction must own an xid before it takes an event id: hence pg_current_xact_id() first.
 */
import { sql, type Transaction } from 'kysely';
import { nowIso } from '../core/clock.js';
import type { Connection } from './connect.js';
import type { Database } from './db-types.js';
import { NOTIFY_CHANNEL, WORK_CHANNEL, type EventFeed } from './event-feed.js';

export interface EventInput {
  type: string;
  accountId: string;
  projectId?: string | null;
  jobId?: string | null;
  data: Record<string, unknown>;
}

export type Tx = Transaction<Database>;

export class TxContext {
  readonly events: EventInput[] = [];
  /** Set by changes that make tasks leasable (new, requeued): workers are told after the commit. */
  workAdded = false;
  constructor(readonly tx: Tx, readonly dialect: Connection['dialect'], readonly leaseSeconds: number) {}
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
    const t = new TxContext(tx, ctx.conn.dialect, ctx.leaseSeconds);
    const result = await fn(t);
    if (t.events.length > 0) lastId = await appendEvents(t);
    work = t.workAdded;
    if (work && t.dialect === 'postgres') await sql`select pg_notify(${WORK_CHANNEL}, '')`.execute(t.tx);
    return result;
  });
  if (lastId > 0) ctx.feed.wake(lastId);
  // Only changes that add leasable tasks wake workers: a lease or a report never makes a worker lease again.
  if (work) ctx.feed.signalWork();
  return value;
}

async function appendEvents(t: TxContext): Promise<number> {
  if (t.dialect === 'postgres') await sql`select pg_current_xact_id()`.execute(t.tx);
  const createdAt = nowIso();
  const rows = await t.tx
    .insertInto('events')
    .values(
      t.events.map((e) => ({
        account_id: e.accountId,
        project_id: e.projectId ?? null,
        job_id: e.jobId ?? null,
        type: e.type,
        data: JSON.stringify(e.data),
        created_at: createdAt,
      })),
    )
    .returning('id')
    .execute();
  const lastId = Math.max(...rows.map((r) => Number(r.id)));
  if (t.dialect === 'postgres') await sql`select pg_notify(${NOTIFY_CHANNEL}, ${String(lastId)})`.execute(t.tx);
  return lastId;
}
