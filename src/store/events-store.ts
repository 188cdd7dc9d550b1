/**
 * Reading the event log for streams, and pruning it. `events_pruned_through` (in meta) is the highest id
 * ever pruned: a client asking to resume from below it has missed events and gets `stream.reset`.
 */
import type { Store } from './port.js';
import type { StoreContext } from './tx.js';

type EventVerbs = Pick<Store, 'readEvents' | 'latestEventId' | 'newestEventId' | 'eventsPrunedThrough' | 'pruneEvents' | 'subscribe' | 'onWork'>;

const PRUNED_KEY = 'events_pruned_through';

export function eventVerbs(ctx: StoreContext): EventVerbs {
  const db = ctx.conn.db;
  return {
    async readEvents(filter, afterId, limit) {
      let q = db.selectFrom('events').selectAll().where('id', '>', afterId).orderBy('id').limit(limit);
      // SQLite commits ids in order; on PostgreSQL only ids up to the high-water mark are settled.
      if (ctx.conn.dialect === 'postgres') {
        const mark = ctx.feed.mark;
        if (afterId >= mark) return [];
        q = q.where('id', '<=', mark);
      }
      if (filter.projectId) q = q.where('project_id', '=', filter.projectId);
      if (filter.jobId) q = q.where('job_id', '=', filter.jobId);
      const rows = await q.execute();
      return rows.map((r) => ({ ...r, id: Number(r.id), data: JSON.parse(r.data) as Record<string, unknown> }));
    },
    async latestEventId() {
      return ctx.feed.settle();
    },
    async newestEventId(filter) {
      let q = db.selectFrom('events').select((eb) => eb.fn.max<number>('id').as('n'));
      if (filter.projectId) q = q.where('project_id', '=', filter.projectId);
      if (filter.jobId) q = q.where('job_id', '=', filter.jobId);
      return Number((await q.executeTakeFirst())?.n ?? 0);
    },
    async eventsPrunedThrough() {
      const row = await db.selectFrom('meta').select('value').where('key', '=', PRUNED_KEY).executeTakeFirst();
      return Number(row?.value ?? 0);
    },
    async pruneEvents(olderThan) {
      return db.transaction().execute(async (tx) => {
        // From the oldest event up to the first one not old enough: a walk along the primary key as long as
        // what gets pruned, where max(id) over created_at read the whole log every 5 s. An old event
        // behind a newer one (clocks do step back) waits for the next prune.
        const first = await tx.selectFrom('events').select('id').where('created_at', '>=', olderThan)
          .orderBy('id').limit(1).executeTakeFirst();
        const through = first ? Number(first.id) - 1
          : Number((await tx.selectFrom('events').select((eb) => eb.fn.max<number>('id').as('n')).executeTakeFirst())?.n ?? 0);
        if (through === 0) return 0;
        const res = await tx.deleteFrom('events').where('id', '<=', through).executeTakeFirst();
        await tx.insertInto('meta').values({ key: PRUNED_KEY, value: String(through) })
          .onConflict((oc) => oc.column('key').doUpdateSet({ value: String(through) })).execute();
        return Number(res.numDeletedRows);
      });
    },
    subscribe(listener) {
      return ctx.feed.subscribe(listener);
    },
    onWork(listener) {
      return ctx.feed.onWork(listener);
    },
  };
}
