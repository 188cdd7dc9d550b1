/**
 * Task quotas (SPEC §11). The running_tasks quota is applied by the lease (src/store/jobs-lease*.ts);
 * here is what a job's status_reason says about it (runningCapOf).
 *
 * The queued_tasks quota at submit: a job whose tasks would take the account's queued tasks
 * past its limit is refused with 429 quota_exceeded, naming the limit and the tasks queued now; the other
 * jobs of a batch go on. Checked before the insert, not in its transaction: concurrent submits of one
 * account may pass the limit by what they bring together (documented in docs/decisions.md).
 *
 * The account's quotas are read once a second per account and kept meanwhile (an admin's change applies
 * within a second): a read per submit would be a round trip on PostgreSQL's dispatch path. Accounts
 * without the quota pay nothing more; those with it, a count of their own queued tasks
 * (tasks_group_queue, by its first column).
 */
import { AppError } from '../core/errors.js';
import type { RunningCap } from '../core/job-reason.js';
import type { Quotas } from '../core/model.js';
import type { NewJob } from '../store/port.js';
import type { Deps } from './deps.js';

const KEEP_MS = 1_000;
const KEEP_AT_MOST = 10_000;
const kept = new WeakMap<Deps, Map<string, { quotas: Quotas | null; until: number }>>();

async function quotasOf(deps: Deps, accountId: string): Promise<Quotas | null> {
  let byAccount = kept.get(deps);
  if (!byAccount) kept.set(deps, byAccount = new Map());
  const now = Date.now();
  const hit = byAccount.get(accountId);
  if (hit && hit.until > now) return hit.quotas;
  const quotas = (await deps.store.getAccount(accountId))?.quotas ?? null;
  if (byAccount.size >= KEEP_AT_MOST) byAccount.clear();
  byAccount.set(accountId, { quotas, until: now + KEEP_MS });
  return quotas;
}

/** The account's running_tasks quota and its leased tasks now; null without the quota (no read then). */
export async function runningCapOf(deps: Deps, accountId: string): Promise<RunningCap | null> {
  const limit = (await quotasOf(deps, accountId))?.running_tasks ?? null;
  return limit === null ? null : { limit, leased: await deps.store.leasedTaskCount(accountId) };
}

/** Per job, in order: null, or the error refusing it (its tasks, after the ones before it, pass the limit). */
export async function queuedQuotaRefusals(deps: Deps, accountId: string, jobs: readonly NewJob[]): Promise<Array<AppError | null>> {
  const limit = jobs.length === 0 ? null : (await quotasOf(deps, accountId))?.queued_tasks ?? null;
  if (limit === null) return jobs.map(() => null);
  let used = await deps.store.queuedTaskCount(accountId);
  return jobs.map((job) => {
    if (used + job.tasks.length > limit) {
      return new AppError('quota_exceeded', { quota: 'queued_tasks', limit, used }, { quota: 'queued_tasks', limit, used });
    }
    used += job.tasks.length;
    return null;
  });
}
