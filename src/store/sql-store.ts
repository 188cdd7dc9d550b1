/** The Store on SQLite or PostgreSQL: one Kysely implementation, composed from one module per area. */
import { accountVerbs } from './accounts-store.js';
import { connect } from './connect.js';
import { EventFeed } from './event-feed.js';
import { eventVerbs } from './events-store.js';
import { jobVerbs } from './jobs-store.js';
import { kvVerbs } from './kv-store.js';
import type { Store } from './port.js';
import { projectVerbs } from './projects-store.js';
import { readinessVerbs } from './readiness-store.js';
import { revisionVerbs } from './revisions-store.js';
import type { StoreContext } from './tx.js';

export async function openStore(opts: { databaseUrl?: string | null; sqlitePath: string; leaseSeconds?: number }): Promise<Store> {
  const conn = await connect(opts);
  const feed = new EventFeed(conn);
  const ctx: StoreContext = { conn, feed, leaseSeconds: opts.leaseSeconds ?? 30 };
  const events = eventVerbs(ctx);
  await feed.start(await events.eventsPrunedThrough(), conn.pool);
  return {
    dialect: conn.dialect,
    async close() {
      await feed.close();
      await conn.close();
    },
    ...accountVerbs(ctx),
    ...projectVerbs(ctx),
    ...revisionVerbs(ctx),
    ...readinessVerbs(ctx),
    ...kvVerbs(ctx),
    ...jobVerbs(ctx),
    ...events,
  };
}
