/**
 * The lease on SQLite (the rules: jobs-lease.ts), through statements prepared once on the store's
 * connection (TxContext.sqlite), not built by Kysely on every call.
 *
 * Why: a lease runs on the dispatch path of every task (a submit's direct dispatch, each report's freed
 * slots). Its five statements execute in ~0.1 ms together, but building and compiling them through Kysely
 * took most of a lease's ~0.35 ms on the dispatch path (server timestamps, docs/decisions.md). Lists of ids
 * go in as one JSON parameter read by `json_each`, so each statement has one text whatever the lease's
 * size; only the candidate query's LIMIT is written in (SQLite re-prepares a statement whose LIMIT is
 * bound: sqlite-inline.ts), a handful of texts per worker.
 *
 * Only inside `inTx` on SQLite: the statements run on the connection the transaction holds. SQLite has
 * one writer, so the running_tasks caps' counts read here are exact for the whole lease (candidatesOf).
 */
import { nowIso } from '../core/clock.js';
import { fairOrder, type FairCandidate, type HeldCount } from '../core/fair-share.js';
import { leaseBounds } from '../core/worker-fit.js';
import type { LeasedTask } from '../core/model.js';
import { emitLeaseEvents, LEASABLE, leasedTasks, leaseTerms, MAX_FAIR_GROUPS, TO_RUNNING_JOB, type LeasedJob, type LeasedRow, type LeaseRequest } from './jobs-lease-common.js';
import { TASK_LEASED_STATES } from '../core/states.js';
import { stateLiterals } from './sqlite-inline.js';
import { insertRows, type SqliteStatements } from './sqlite-rows.js';
import type { TxContext } from './tx.js';

type Candidate = { id: string; job_id: string; account_id: string };
type JobRow = LeasedJob & { id: string; status: string };

/** A task's minimums against the worker's capacity (core/worker-fit.ts leaseBounds: four values). */
const FITS = `(min_cpu is null or min_cpu <= ?) and (min_memory_gb is null or min_memory_gb <= ?)
  and (min_storage_gb is null or min_storage_gb <= ?) and (min_gpu_count is null or min_gpu_count <= ?)`;

const QUEUED = `select id, job_id, account_id from tasks where status = 'queued' and profile = ? and available_at <= ? and ${FITS}`;

/** Accounts with a running_tasks cap (migration 006's partial index: nothing to read when none has one). */
const CAPS = `select id, running_tasks_cap as cap from accounts where running_tasks_cap is not null`;

/** Their tasks holding a lease now. */
const LEASED_OF = `select account_id, count(*) as n from tasks where status in (${stateLiterals(TASK_LEASED_STATES)})
  and account_id in (select value from json_each(?)) group by account_id`;

const RUNNING_OF = `select id from jobs where id in (select value from json_each(?)) and status = 'running'`;

const TAKE = `update tasks set status = 'preparing', attempt = attempt + 1, worker_id = ?, lease_token = ?,
    lease_expires_at = ?, node = ?,
    status_reason = case when id in (select value from json_each(?)) then ? else ? end
  where id in (select value from json_each(?)) and status in (${stateLiterals(LEASABLE)})
  returning id, job_id, project_id, account_id, idx, attempt, payload, runner_command, kind`;

const JOBS_OF = `select jobs.id, jobs.status, jobs.revision_id, jobs.content_hash, jobs.env, jobs.timeout_s, jobs.checkpoint,
    jobs.runner_command, jobs.tasks_total, projects.name as project
  from jobs join projects on projects.id = jobs.project_id
  where jobs.id in (select value from json_each(?))`;

const START_JOBS = `update jobs set status = 'running', started_at = ?, status_reason = ?
  where id in (select value from json_each(?)) and status in (${stateLiterals(TO_RUNNING_JOB)})
  returning id, account_id, project_id`;

/** The first and the last (account, project) with queued tasks, through tasks_group_queue (migration 007). */
const FIRST_GROUP = `select account_id, project_id from tasks where status = 'queued' order by account_id, project_id limit 1`;
const LAST_GROUP = `select account_id, project_id from tasks where status = 'queued' order by account_id desc, project_id desc limit 1`;
/** The next (account, project) with queued tasks after the given one: a skip over the same index. */
const NEXT_GROUP = `select account_id, project_id from tasks where status = 'queued' and (account_id, project_id) > (?, ?)
  order by account_id, project_id limit 1`;
/** An (account, project)'s next queued tasks for the profile, in its queue order. */
const GROUP_QUEUE = `select id, job_id, account_id, project_id, priority, available_at from tasks
  where status = 'queued' and account_id = ? and project_id = ? and profile = ? and available_at <= ? and ${FITS}
  order by priority desc, available_at, id`;
/** Leased tasks per account and project (through tasks_leases: a few per worker slot). */
const HELD = `select account_id, project_id, count(*) as n from tasks where status in (${stateLiterals(TASK_LEASED_STATES)})
  group by account_id, project_id`;

/** Whether more than one (account, project) has tasks queued: two index probes. */
function sharedQueue(db: SqliteStatements): boolean {
  const first = db.prepare(FIRST_GROUP).get() as { account_id: string; project_id: string } | undefined;
  const last = db.prepare(LAST_GROUP).get() as { account_id: string; project_id: string } | undefined;
  return first !== undefined && last !== undefined && (first.account_id !== last.account_id || first.project_id !== last.project_id);
}

/** Up to `want` queued tasks in the fair order of core/fair-share.ts, running_tasks caps applied. */
function fairCandidates(db: SqliteStatements, profile: string, now: string, bounds: number[], want: number): FairCandidate[] {
  const candidates: FairCandidate[] = [];
  const queue = db.prepare(`${GROUP_QUEUE} limit ${Math.trunc(want)}`);
  let group = db.prepare(FIRST_GROUP).get() as { account_id: string; project_id: string } | undefined;
  for (let n = 0; group && n < MAX_FAIR_GROUPS; n += 1) {
    candidates.push(...queue.all(group.account_id, group.project_id, profile, now, ...bounds) as FairCandidate[]);
    group = db.prepare(NEXT_GROUP).get(group.account_id, group.project_id) as typeof group;
  }
  const held = db.prepare(HELD).all() as HeldCount[];
  const caps = db.prepare(CAPS).all() as Array<{ id: string; cap: number }>;
  const room = new Map(caps.map((c) => [c.id, c.cap - held.filter((h) => h.account_id === c.id).reduce((sum, h) => sum + h.n, 0)]));
  return fairOrder(candidates, held, want, room);
}

/**
 * Up to `want` queued tasks in queue order, of those whose requirements the worker meets (`bounds`,
 * FITS). When more than one account or project has tasks queued, in the fair order instead
 * (fairCandidates). Without running_tasks caps: the tasks table alone, in the
 * order of its queue index (migration 003), up to the LIMIT. With caps: the tasks of accounts at their
 * cap are passed over (their tasks wait; others' go ahead of them), and an account takes no more than
 * its room. When an account fills up within the window, the rest of its tasks there were skipped: the
 * query goes again past the window, without that account and without the tasks already taken, until
 * enough are found or the queue ends (each round fills at least one more account, so rounds are few).
 */
function candidatesOf(db: SqliteStatements, profile: string, now: string, bounds: number[], want: number): Candidate[] {
  if (sharedQueue(db)) return fairCandidates(db, profile, now, bounds, want);
  const caps = db.prepare(CAPS).all() as Array<{ id: string; cap: number }>;
  if (caps.length === 0) {
    return db.prepare(`${QUEUED} order by priority desc, available_at, id limit ${Math.trunc(want)}`).all(profile, now, ...bounds) as Candidate[];
  }
  const leased = new Map((db.prepare(LEASED_OF).all(JSON.stringify(caps.map((c) => c.id))) as Array<{ account_id: string; n: number }>)
    .map((r) => [r.account_id, r.n]));
  const room = new Map(caps.map((c) => [c.id, c.cap - (leased.get(c.id) ?? 0)]));
  const taken: Candidate[] = [];
  for (;;) {
    const limit = Math.trunc(want - taken.length);
    const full = [...room].filter(([, r]) => r <= 0).map(([id]) => id);
    const rows = db.prepare(`${QUEUED} and account_id not in (select value from json_each(?)) and id not in (select value from json_each(?))
      order by priority desc, available_at, id limit ${limit}`).all(profile, now, ...bounds, JSON.stringify(full), JSON.stringify(taken.map((c) => c.id))) as Candidate[];
    let skipped = false;
    for (const row of rows) {
      const left = room.get(row.account_id);
      if (left === undefined) taken.push(row);
      else if (left > 0) {
        taken.push(row);
        room.set(row.account_id, left - 1);
      } else skipped = true;
    }
    if (!skipped || rows.length < limit || taken.length >= want) return taken;
  }
}

export function leaseSqliteInTx(t: TxContext, req: LeaseRequest, extra: number): LeasedTask[] {
  const db = t.sqlite;
  if (!db) throw new Error('leaseSqliteInTx: a SQLite transaction without its statements');
  const now = nowIso();
  const slots = Math.max(0, req.slots);
  const candidates = candidatesOf(db, req.profile, now, leaseBounds(req.capacity), slots + extra);
  const picked = candidates.slice(0, slots);
  const later = [...new Set(candidates.slice(picked.length).map((c) => c.job_id))];
  const runningJobs = later.length === 0 ? [] : db.prepare(RUNNING_OF).all(JSON.stringify(later)) as Array<{ id: string }>;
  const running = new Set([...picked.map((c) => c.job_id), ...runningJobs.map((j) => j.id)]);
  const held: string[] = [];
  for (const c of candidates.slice(picked.length)) {
    if (!running.has(c.job_id)) break;
    held.push(c.id);
  }
  if (picked.length + held.length === 0) return [];

  const lease = leaseTerms(t, req, now);
  const ids = [...picked.map((c) => c.id), ...held];
  const leased = db.prepare(TAKE).all(req.workerId, lease.token, lease.expires, req.node, JSON.stringify(held), lease.waiting, lease.reason, JSON.stringify(ids)) as LeasedRow[];
  if (leased.length === 0) return [];
  // In queue order: the worker starts them in the order it gets them.
  const order = new Map(candidates.map((c, i) => [c.id, i]));
  leased.sort((a, b) => order.get(a.id)! - order.get(b.id)!);

  insertRows(db, 'attempts', leased.map((r) => ({
    task_id: r.id, attempt: r.attempt, job_id: r.job_id, worker_id: req.workerId, node: req.node, status: 'preparing',
    exit_code: null, error: null, started_at: null, finished_at: null,
  })));

  const jobIds = JSON.stringify([...new Set(leased.map((r) => r.job_id))]);
  const jobs = db.prepare(JOBS_OF).all(jobIds) as JobRow[];
  // Only jobs that were not running yet (read just above, in this transaction): a fan-out's later leases
  // skip the statement. The status guard in the WHERE still decides.
  const starting = jobs.filter((j) => (TO_RUNNING_JOB as readonly string[]).includes(j.status)).map((j) => j.id);
  const started = starting.length === 0 ? []
    : db.prepare(START_JOBS).all(now, lease.reason, JSON.stringify(starting)) as Array<{ id: string; account_id: string; project_id: string }>;
  emitLeaseEvents(t, req, lease, leased, started);
  return leasedTasks(lease, leased, new Map(jobs.map((j) => [j.id, j])));
}
