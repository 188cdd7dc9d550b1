/**
 * Periodic housekeeping that needs no HTTP: expired KV keys are deleted (with kv.deleted events) and the
 * event log is pruned past its retention. Safe in several API processes at once: each step is one
 * idempotent statement or transaction.
 */
import type { FastifyBaseLogger } from 'fastify';
import { nowIso } from '../core/clock.js';
import type { Store } from '../store/port.js';

export function startHousekeeping(store: Store, opts: { eventRetentionSeconds: number; intervalMs?: number; log: FastifyBaseLogger }): () => void {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      await store.kvSweepExpired();
      await store.pruneEvents(nowIso(Date.now() - opts.eventRetentionSeconds * 1000));
    } catch (err) {
      opts.log.warn({ err }, 'housekeeping failed; will retry');
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), opts.intervalMs ?? 5_000);
  timer.unref();
  return () => clearInterval(timer);
}
