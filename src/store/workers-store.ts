/**
 * Workers and their prepared runtimes. A worker gets a stable `node-N` label at registration (the next
 * number; a lost race on the unique number retries). A worker whose heartbeats stop is marked offline by
 * the sweeper; its leases expire on their own and end as "worker lost".
 */
import { nowIso } from '../core/clock.js';
import { newId } from '../core/ids.js';
import type { Worker } from '../core/model.js';
import { toWorker } from './rows.js';
import { isUniqueViolation } from './sql-errors.js';
import type { StoreContext, TxContext } from './tx.js';

export interface WorkerInfo { embedded: boolean; profile: string; resources: Record<string, unknown>; runtime: Record<string, unknown>; slots: number; token_id: string | null }

export async function registerWorker({ conn }: StoreContext, info: WorkerInfo): Promise<Worker> {
  for (let attempt = 0; ; attempt += 1) {
    const top = await conn.db.selectFrom('workers').select((eb) => eb.fn.max<number>('node_number').as('n')).executeTakeFirst();
    const now = nowIso();
    const row = {
      id: newId('wkr'), node_number: Number(top?.n ?? 0) + 1, token_id: info.token_id, embedded: info.embedded ? 1 : 0,
      profile: info.profile, resources: JSON.stringify(info.resources), runtime: JSON.stringify(info.runtime),
      slots: info.slots, status: 'online', started_at: now, last_seen_at: now,
    };
    try {
      await conn.db.insertInto('workers').values(row).execute();
      return toWorker(row);
    } catch (err) {
      if (!isUniqueViolation(err) || attempt > 10) throw err;
    }
  }
}

export async function setWorkerStatusInTx(t: TxContext, workerId: string, status: 'online' | 'draining' | 'offline'): Promise<void> {
  await t.tx.updateTable('workers').set({ status, last_seen_at: nowIso() }).where('id', '=', workerId).execute();
}

/** Workers silent for longer than `staleSeconds` go offline. */
export async function markSilentWorkersOfflineInTx(t: TxContext, before: string): Promise<number> {
  const res = await t.tx.updateTable('workers').set({ status: 'offline' })
    .where('status', '!=', 'offline').where('last_seen_at', '<', before).executeTakeFirst();
  return Number(res.numUpdatedRows);
}

export interface RuntimeUpdate {
  worker_id: string; project_id: string; account_id: string; project: string; content_hash: string; state: string;
  phase?: string | null; status_reason?: string | null; started_at?: string | null; finished_at?: string | null;
  duration_ms?: number | null; error?: { code: string; message: string } | null; log_tail?: string;
  validation?: Array<{ check: string; ok: boolean; message: string }>;
}

/** Upserts the prepared runtime of (worker, project, hash) and tells the project stream. */
export async function setRuntimeStateInTx(t: TxContext, u: RuntimeUpdate, node: string): Promise<void> {
  const now = nowIso();
  const fields = {
    state: u.state, phase: u.phase ?? null, status_reason: u.status_reason ?? null, started_at: u.started_at ?? null,
    finished_at: u.finished_at ?? null, duration_ms: u.duration_ms ?? null, error_code: u.error?.code ?? null,
    error_message: u.error?.message ?? null, log_tail: u.log_tail ?? '', validation: JSON.stringify(u.validation ?? []),
    updated_at: now,
  };
  await t.tx.insertInto('prepared_runtimes').values({
    id: newId('rt'), worker_id: u.worker_id, project_id: u.project_id, content_hash: u.content_hash, init_requested_at: null, ...fields,
  }).onConflict((oc) => oc.columns(['worker_id', 'project_id', 'content_hash']).doUpdateSet(fields)).execute();
  t.emit({
    type: 'project.readiness', accountId: u.account_id, projectId: u.project_id,
    data: { project: u.project, content_hash: u.content_hash, node, state: u.state, phase: u.phase ?? null, error: u.error ?? null },
  });
}
