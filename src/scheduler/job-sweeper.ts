/**
 * The job sweeper: every second, leases past their expiry end as "worker lost" (retried while attempts
 * remain), queued tasks past queue_timeout_s fail, and silent workers go offline. Safe in several API
 * processes at once: every step is a guarded update in one transaction.
 */
import type { FastifyBaseLogger } from 'fastify';
import { nowIso } from '../core/clock.js';
import type { Store } from '../store/port.js';

export function startJobSweeper(store: Store, opts: { intervalMs?: number; log: FastifyBaseLogger }): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    store.sweep(nowIso())
      .catch((err) => opts.log.warn({ err }, 'job sweep failed; will retry'))
      .finally(() => { running = false; });
  }, opts.intervalMs ?? 1_000);
  timer.unref();
  return () => clearInterval(timer);
}
