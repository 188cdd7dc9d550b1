/**
 * Wakes stream readers when events become readable. A local commit or a PostgreSQL NOTIFY (sent by
 * every event-writing transaction, delivered at commit to every API process) moves the high-water mark
 * (high-water.ts); each move wakes subscribers. Readers never trust the signal's content: they re-read
 * the log after their last id and up to the mark, so a lost or duplicated wake-up cannot lose or invent
 * an event, and a slow poll covers a lost NOTIFY.
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { Connection } from './connect.js';
import { HighWater } from './high-water.js';

export const NOTIFY_CHANNEL = 'computalot_events';
/** Sent by transactions that make tasks leasable, so idle workers in every process lease at once. */
export const WORK_CHANNEL = 'computalot_work';
const POLL_MS = 1_000;

export class EventFeed {
  private readonly emitter = new EventEmitter();
  private listenClient: pg.PoolClient | null = null;
  private readonly highWater: HighWater;
  private poll: NodeJS.Timeout | null = null;

  constructor(conn: Connection) {
    this.emitter.setMaxListeners(0);
    this.highWater = new HighWater(conn, (mark) => this.emitter.emit('wake', mark));
  }

  async start(prunedThrough: number, pool: pg.Pool | null): Promise<void> {
    await this.highWater.init(prunedThrough);
    if (pool) await this.listen(pool);
    this.poll = setInterval(() => void this.highWater.advance().catch(() => undefined), POLL_MS);
    this.poll.unref();
  }

  /** The highest id readers may read up to. */
  get mark(): number {
    return this.highWater.value;
  }

  /**
   * Something committed events: move the mark (which wakes subscribers when it moves). A commit in this
   * process on SQLite knows its last id is settled (one writer), so the mark moves at once, without a query.
   * On PostgreSQL the move is a query per commit; with no stream subscribed here it is left to the next
   * reader (streams settle the mark before their first read, see api/sse.ts) and to the 1 s poll: a
   * fan-out's thousand commits a second otherwise cost as many queries that nobody reads.
   */
  wake(committedId?: number): void {
    if (committedId !== undefined && this.highWater.settledOnCommit) this.highWater.bump(committedId);
    else if (this.emitter.listenerCount('wake') > 0) void this.highWater.advance().catch(() => undefined);
  }

  settle(): Promise<number> {
    return this.highWater.settle();
  }

  signalWork(): void {
    this.emitter.emit('work');
  }

  onWork(listener: () => void): () => void {
    this.emitter.on('work', listener);
    return () => this.emitter.off('work', listener);
  }

  subscribe(listener: (mark: number) => void): () => void {
    this.emitter.on('wake', listener);
    return () => this.emitter.off('wake', listener);
  }

  private async listen(pool: pg.Pool): Promise<void> {
    const client = await pool.connect();
    client.on('notification', (msg) => (msg.channel === WORK_CHANNEL ? this.signalWork() : this.wake()));
    // A broken LISTEN connection must not crash the server; the poll keeps streams moving.
    client.on('error', () => undefined);
    await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    await client.query(`LISTEN ${WORK_CHANNEL}`);
    this.listenClient = client;
  }

  async close(): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    this.highWater.close();
    this.emitter.removeAllListeners();
    if (this.listenClient) {
      this.listenClient.release(true);
      this.listenClient = null;
    }
  }
}
