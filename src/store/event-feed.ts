/**
 * Wakes stream readers when events commit. In one process an EventEmitter is enough; with PostgreSQL the
 * transaction that writes events also runs pg_notify, delivered at commit to every API process through a
 * LISTEN connection. Readers never trust the signal's content: they re-read the event log after their
 * last id, so a lost or duplicated wake-up cannot lose or invent an event.
 */
import { EventEmitter } from 'node:events';
import type pg from 'pg';

export const NOTIFY_CHANNEL = 'computalot_events';

export class EventFeed {
  private readonly emitter = new EventEmitter();
  private listenClient: pg.PoolClient | null = null;
  private latest = 0;

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  /** Called after a commit that wrote events (this process) or on a NOTIFY (any process). */
  wake(latestId: number): void {
    if (latestId > this.latest) this.latest = latestId;
    this.emitter.emit('wake', this.latest);
  }

  subscribe(listener: (latestId: number) => void): () => void {
    this.emitter.on('wake', listener);
    return () => this.emitter.off('wake', listener);
  }

  async listen(pool: pg.Pool): Promise<void> {
    const client = await pool.connect();
    client.on('notification', (msg) => this.wake(Number(msg.payload ?? 0)));
    // A broken LISTEN connection must not crash the server; readers also poll as a safety net.
    client.on('error', () => undefined);
    await client.query(`LISTEN ${NOTIFY_CHANNEL}`);
    this.listenClient = client;
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
    if (this.listenClient) {
      this.listenClient.release(true);
      this.listenClient = null;
    }
  }
}
