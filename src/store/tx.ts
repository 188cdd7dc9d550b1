/**
 * One transaction per change, with its events (the outbox). `inTx` runs the change, then appends the
 * events it recorded in the same transaction, so an event exists exactly when its change does.
 *
 * PostgreSQL hands out sequence numbers before commit, so two writers could commit ids out of order and
 * a reader at id 11 would never see a late-committing 10. The event append therefore takes a
 * transaction-scoped advisory lock, which makes event ids commit in id order; SQLite has one writer.
 */
import { sql, type Transaction } from 'kysely';
import { nowIso } from '../core/clock.js';
import type { Connection } from './connect.js';
import type { Database } from './db-types.js';
import { NOTIFY_CHANNEL, type EventFeed } from './event-feed.js';

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
  constructor(readonly tx: Tx, readonly dialect: Connection['dialect']) {}
  emit(event: EventInput): void {
    this.events.push(event);
  }
}

const EVENT_LOCK_KEY = 7_204_311;

export interface StoreContext {
  conn: Connection;
  feed: EventFeed;
}

export async function inTx<T>(ctx: StoreContext, fn: (t: TxContext) => Promise<T>): Promise<T> {
  let lastId = 0;
  const value = await ctx.conn.db.transaction().execute(async (tx) => {
    const t = new TxContext(tx, ctx.conn.dialect);
    const result = await fn(t);
    if (t.events.length > 0) lastId = await appendEvents(t);
    return result;
  });
  if (lastId > 0) ctx.feed.wake(lastId);
  return value;
}

async function appendEvents(t: TxContext): Promise<number> {
  if (t.dialect === 'postgres') await sql`select pg_advisory_xact_lock(${EVENT_LOCK_KEY})`.execute(t.tx);
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
