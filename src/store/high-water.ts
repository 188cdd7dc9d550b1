/**
 * The event log's high-water mark: the highest id H such that every event id <= H is either committed
 * or will never exist. Streams read only up to H, so they never skip an event that commits late.
 *
 * SQLite has one writer, so ids commit in order and H is simply max(id).
 *
 * PostgreSQL allocates sequence values before commit, so id 11 may commit before id 10. When the log
 * shows a gap, we note the snapshot's xmax at that moment. Every transaction that could own the missing
 * id already had an xid then (tx.ts assigns one before taking an id), so once the oldest running xid
 * has passed that xmax, all of them have ended: the gap is either filled now or permanent (a rollback),
 * and H moves past it. Until then H waits at the gap; nothing in flight is ever serialised.
 */
import { sql } from 'kysely';
import type { Connection } from './connect.js';

const SCAN = 1_000;
const RETRY_MS = 10;
/** The longest a reader waits for the mark to pass what was committed when it asked. */
const SETTLE_MS = 2_000;
/** On start, gaps older than this many ids are assumed settled (appends happen at the end of a transaction). */
const START_WINDOW = 10_000;

export class HighWater {
  private mark = 0;
  private gap: { at: number; xmax: bigint } | null = null;
  private running: Promise<number> | null = null;
  private retry: NodeJS.Timeout | null = null;

  constructor(private readonly conn: Connection, private readonly onAdvance: (mark: number) => void) {}

  get value(): number {
    return this.mark;
  }

  /** True where a commit's own ids are settled as soon as it commits (SQLite: one writer). */
  get settledOnCommit(): boolean {
    return this.conn.dialect === 'sqlite';
  }

  /** Moves the mark to an id known to be settled (SQLite, after this process's commit). */
  bump(id: number): void {
    if (id <= this.mark) return;
    this.mark = id;
    this.onAdvance(id);
  }

  async init(prunedThrough: number): Promise<void> {
    const top = await this.maxId();
    // A fully pruned log is empty, yet its ids are used up: the mark never goes below what was pruned.
    this.mark = this.conn.dialect === 'sqlite' ? Math.max(top, prunedThrough) : Math.max(prunedThrough, top - START_WINDOW, 0);
    await this.advance();
  }

  /**
   * Moves the mark past every event committed before this call (waiting, at most SETTLE_MS, for gaps
   * below them to settle): what a reader needs before a replay. `advance` alone may join a pass that
   * started before the latest commit, or stop at a gap it will only pass on a retry.
   */
  async settle(): Promise<number> {
    if (this.conn.dialect === 'sqlite') return this.advance();
    const top = await this.maxId();
    const deadline = Date.now() + SETTLE_MS;
    for (;;) {
      const mark = await this.advance();
      if (mark >= top || Date.now() > deadline) return mark;
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }

  /** Moves the mark as far as is safe now; concurrent callers share one pass. */
  advance(): Promise<number> {
    this.running ??= this.pass().finally(() => { this.running = null; });
    return this.running;
  }

  close(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
  }

  private async maxId(): Promise<number> {
    const row = await this.conn.db.selectFrom('events').select((eb) => eb.fn.max<number>('id').as('n')).executeTakeFirst();
    return Number(row?.n ?? 0);
  }

  private async pass(): Promise<number> {
    const before = this.mark;
    if (this.conn.dialect === 'sqlite') this.mark = Math.max(this.mark, await this.maxId());
    else await this.walk();
    if (this.mark > before) this.onAdvance(this.mark);
    return this.mark;
  }

  private async walk(): Promise<void> {
    for (;;) {
      const rows = await this.conn.db.selectFrom('events').select('id').where('id', '>', this.mark)
        .orderBy('id').limit(SCAN).execute();
      let restart = false;
      for (const { id } of rows) {
        const next = Number(id);
        if (next !== this.mark + 1) {
          if (!(await this.gapSettled(this.mark + 1))) return;
          // Re-read below `next`: a missing id may have committed while we waited.
          const late = await this.conn.db.selectFrom('events').select('id')
            .where('id', '>', this.mark).where('id', '<', next).limit(1).execute();
          if (late.length > 0) {
            restart = true;
            break;
          }
        }
        this.mark = next;
      }
      if (!restart && rows.length < SCAN) return;
    }
  }

  private async gapSettled(at: number): Promise<boolean> {
    if (!this.gap || this.gap.at !== at) {
      const { rows } = await sql<{ x: string }>`select pg_snapshot_xmax(pg_current_snapshot())::text as x`.execute(this.conn.db);
      this.gap = { at, xmax: BigInt(rows[0]!.x) };
      this.retryLater();
      return false;
    }
    const { rows } = await sql<{ x: string }>`select pg_snapshot_xmin(pg_current_snapshot())::text as x`.execute(this.conn.db);
    if (BigInt(rows[0]!.x) < this.gap.xmax) {
      this.retryLater();
      return false;
    }
    return true;
  }

  private retryLater(): void {
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.advance();
    }, RETRY_MS);
    this.retry.unref();
  }
}
