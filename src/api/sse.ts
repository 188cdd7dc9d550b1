/**
 * Server-sent events over the durable event log (SPEC §10). A stream is a cursor on the log: it replays
 * everything after `Last-Event-ID` (or `?since=`), then follows new events as they commit. It cannot miss
 * or invent an event, because it only ever reads the log in id order after the last id it sent; wake-ups
 * (in-process or PostgreSQL NOTIFY) only say "read again", and a slow poll covers a lost wake-up.
 * A resume point older than the pruned part of the log gets `stream.reset` instead of a silent gap.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Store, StoredEvent } from '../store/port.js';
import { sseClients } from '../services/metrics.js';

const BATCH = 500;
const SAFETY_POLL_MS = 2_000;

export interface StreamOptions {
  store: Store;
  filter: { projectId?: string; jobId?: string };
  heartbeatMs: number;
  /** Where a client with no resume point starts: 'now' (live only) or 'beginning' (full replay). */
  startAt: 'now' | 'beginning';
  /** The stream ends after writing an event for which this is true. */
  endAfter?: (event: StoredEvent) => boolean;
  /**
   * The event a full replay starts with ('job.created'): a client with no resume point whose replay would
   * no longer find it (pruned) gets `stream.reset`, as one resuming from 0 would, not a replay from the middle.
   */
  firstEvent?: string;
  /** Checked after the first replay: true ends the stream at once (a finished job has nothing to come). */
  done?: () => Promise<boolean>;
  /** Open streams register their closer here, so shutdown can end them all. */
  registry: Set<() => void>;
}

export function resumePoint(request: FastifyRequest): number | null {
  const header = request.headers['last-event-id'];
  const since = (request.query as { since?: string | number } | undefined)?.since;
  const raw = typeof header === 'string' && header !== '' ? header : since;
  if (raw === undefined || raw === '') return null;
  const value = Number(raw);
  return Number.isInteger(value) && value >= 0 ? value : null;
}

/** Resolves when the socket can take more, or when the response is gone (a 'drain' would never come). */
function drainedOrClosed(res: FastifyReply['raw']): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.once('drain', done);
    res.once('close', done);
  });
}

function frame(event: { id: number; type: string; data: unknown }): string {
  return `id: ${event.id}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

export async function openStream(request: FastifyRequest, reply: FastifyReply, opts: StreamOptions): Promise<void> {
  const { store } = opts;
  let resume = resumePoint(request);
  const prunedThrough = await store.eventsPrunedThrough();
  if (resume === null && opts.startAt === 'beginning' && opts.firstEvent && prunedThrough > 0) {
    const [first] = await store.readEvents(opts.filter, 0, 1);
    if (first?.type !== opts.firstEvent) resume = 0;
  }
  let lastId = resume ?? (opts.startAt === 'now' ? await store.latestEventId() : 0);
  let reset: string | null = null;
  if (resume !== null && resume < prunedThrough) {
    // The reset's id becomes the client's Last-Event-ID, so it may not be below the pruned part of the log
    // (the log can be empty after pruning, e.g. after a restart): resuming from it would reset again.
    lastId = Math.max(await store.latestEventId(), prunedThrough);
    reset = frame({ id: lastId, type: 'stream.reset', data: { reason: 'events_pruned', requested_since: resume, oldest_available: prunedThrough + 1, message: 'Events after your last id were pruned; re-read current state, then follow this stream.' } });
  }

  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.write(`retry: 1000\n: stream open\n\n`);
  if (reset) res.write(reset);

  let closed = false;
  /** A finished job's stream ends at its last event, whatever that is (see below). */
  let endAt: number | null = null;
  let pumping = false;
  let again = false;
  sseClients.inc();

  const close = () => {
    if (closed) return;
    closed = true;
    sseClients.dec();
    clearInterval(heartbeat);
    clearInterval(poll);
    unsubscribe();
    opts.registry.delete(close);
    res.end();
  };

  const pump = async (): Promise<void> => {
    if (pumping) {
      again = true;
      return;
    }
    pumping = true;
    try {
      do {
        again = false;
        for (;;) {
          if (closed) return;
          const events = await store.readEvents(opts.filter, lastId, BATCH);
          for (const event of events) {
            if (closed) return;
            lastId = event.id;
            const ok = res.write(frame({ id: event.id, type: event.type, data: { ...event.data, created_at: event.created_at } }));
            if (opts.endAfter?.(event) || (endAt !== null && event.id >= endAt)) {
              close();
              return;
            }
            if (!ok) await drainedOrClosed(res);
          }
          if (events.length < BATCH) break;
        }
      } while (again);
    } catch (err) {
      request.log.warn({ err }, 'stream read failed; closing so the client reconnects with Last-Event-ID');
      close();
    } finally {
      pumping = false;
    }
  };

  const unsubscribe = store.subscribe(() => void pump());
  const heartbeat = setInterval(() => res.write(': keepalive\n\n'), opts.heartbeatMs);
  const poll = setInterval(() => void pump(), SAFETY_POLL_MS);
  opts.registry.add(close);
  request.raw.on('close', close);
  res.on('close', close);
  res.on('error', close);
  // The client may have left during the reads before hijack, when no 'close' listener was there yet:
  // without this check the stream (its timers and subscription) would stay open for nobody.
  if (request.raw.destroyed || res.destroyed || !res.socket || res.socket.destroyed) {
    close();
    return;
  }
  // The mark may lag while nobody streams (store/event-feed.ts): settle it before the first read, so a
  // replay (and a job stream opened after its job ended) sees every committed event.
  await store.latestEventId();
  await pump();
  if (!closed && opts.done && (await opts.done())) {
    await pump();
    // Finished, but its last events may still be above the high-water mark: a gap below them waits for
    // every older transaction in the cluster to end, and settling gives up after 2 s (seen while a test
    // in another database held one open: the stream ended empty). Such a stream follows on until its
    // last event is sent; one with nothing left (all sent, or pruned) ends now.
    if (!closed) {
      const newest = await store.newestEventId(opts.filter);
      if (newest <= lastId) close();
      else endAt = newest;
    }
  }
}
