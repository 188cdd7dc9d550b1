/**
 * The lease on PostgreSQL as one statement. On SQLite (jobs-lease.ts) a lease is several statements, which
 * cost nothing in-process; here each is a network round trip, and the lease sits on both hot paths (a
 * submit's direct dispatch, and every report-and-lease of a fan-out). Same rules, written as CTEs:
 *
 *   shared    whether more than one (account, project) has tasks queued: then the plain statements
 *             take nothing (cand is empty) and say so, and fairLease leases instead (the `lease-chosen`
 *             text, whose cand is the tasks the fair order chose, in that order)
 *   caps      accounts with a running_tasks cap (migration 006's partial index; none in most setups),
 *             locked, so that concurrent leases count each capped account's leased tasks one at a time
 *   room      how many more tasks each of them may hold
 *   cand      the next `slots + prefetch` queued tasks in queue order, locked (FOR UPDATE SKIP LOCKED):
 *             the tasks table alone, read in its queue index's order up to the LIMIT (migration 003),
 *             without the tasks of accounts with no room
 *   ranked    their place among their account's, to keep a capped account to its room (the rest are
 *             skipped; the caller leases again past them, leasePostgresInTx)
 *   numbered  the kept ones' position n in queue order, and their job's status
 *   stop      prefetch ends at the first task past the free slots whose job is neither running nor among
 *             the jobs the free slots take (jobs-lease.ts: prefetch only continues running jobs)
 *   leased    the guarded UPDATE (status still leasable), a waiting reason for the held ones
 *   att       their attempt rows
 *   started   their jobs that were queued: now running
 *   ev        the events: first those the transaction emitted before the lease (a report's ends), then the
 *             lease's own, as emitLeaseEvents writes them on SQLite (jobs that started, then each task)
 *   note      the last event id, and the NOTIFY that tells every process's streams
 *
 * Data-modifying CTEs all see the statement's snapshot: the final SELECT reads each job's unchanging
 * columns, and which jobs started comes from `started` itself.
 *
 * Writing the events here saves the commit's own events statement (a round trip on every dispatch and
 * every fan-out flush), and makes a lease on its own one statement, which inStatement runs without BEGIN
 * and COMMIT (tx.ts). The lease's events are read through `leased` and `started`, so no event id is drawn
 * before an updated row gave the transaction its xid; events emitted earlier come after a change of
 * their own (or pg_current_xact_id() first, as tx.ts does).
 */
import { sql, type CompiledQuery } from 'kysely';
import { nowIso } from '../core/clock.js';
import type { LeasedTask } from '../core/model.js';
import { NOTIFY_CHANNEL } from './event-feed.js';
import { TASK_LEASED_STATES } from '../core/states.js';
import { fairOrder, type FairCandidate, type HeldCount } from '../core/fair-share.js';
import { leaseBounds } from '../core/worker-fit.js';
import { LEASABLE, leasedTasks, leaseTerms, MAX_FAIR_GROUPS, TO_RUNNING_JOB, type LeasedJob, type LeasedRow, type LeaseRequest, type LeaseTerms } from './jobs-lease-common.js';
import { PREPARED } from './pg-prepared.js';
import { fixedStatement } from './pg-template.js';
import { eventRows, type TxContext } from './tx.js';

/** One row per leased task, or a single row of nulls but last_event_id when nothing was leased. */
type Row = LeasedRow & LeasedJob & { n: string; last_event_id: number | null; skipped: string; caps: string; shared: boolean };

/** Leases again past skipped tasks at most this many times (each round fills at least one capped account). */
const MAX_ROUNDS = 8;

/**
 * Locks the accounts with a running_tasks cap. The lease statement locks them too, but its snapshot is
 * taken before it waits for the lock, so two concurrent leases would both count the tasks held before
 * either committed and pass the cap together. Locked by an earlier statement of the transaction, the
 * lease's snapshot comes after the other lease's commit. Only while caps exist (Connection.leaseHints).
 */
export const LOCK_CAPS = sql`select id from accounts where running_tasks_cap is not null order by id for update`;

/**
 * Whether more than one (account, project) has tasks queued: the first and the last pair in
 * tasks_group_queue (migration 007), two index probes. The plain statements take nothing then and say so
 * (fairLease takes over); the fair one reports it too, to keep Connection.leaseHints true.
 */
const SHARED = sql`shared as materialized (
      select coalesce((select row(account_id, project_id) from tasks where status = 'queued' order by account_id, project_id limit 1)
        is distinct from (select row(account_id, project_id) from tasks where status = 'queued' order by account_id desc, project_id desc limit 1), false) as found
    )`;

/** The capped accounts as the lease reads them: the same rows, locked in the same order as LOCK_CAPS. */
const CAPS = sql`select id, running_tasks_cap as cap from accounts where running_tasks_cap is not null order by id for update`;

export async function leasePostgresInTx(t: TxContext, req: LeaseRequest, extra: number): Promise<LeasedTask[]> {
  // The last lease found more than one (account, project) queued: the fair lease, at once.
  if (t.leaseHints?.shared) return fairLeaseOf(t, req, extra);
  const got = t.leaseHints?.caps ? await inTransaction(t, async (tx) => {
    await LOCK_CAPS.execute(tx);
    return leaseRounds(t, tx, req, extra);
  }) : await leaseRounds(t, t.tx, req, extra);
  // The plain statement takes nothing from a shared queue, and says it found one (readLease): the fair
  // lease then, this once; the next leases go to it directly until it finds a single pair again.
  if (got.length === 0 && t.leaseHints?.shared) return fairLeaseOf(t, req, extra);
  return got;
}

/**
 * The fair lease in a transaction only where it needs one: with running_tasks caps, the capped accounts
 * are locked before their tasks are counted. Without caps its read and its lease statement need none
 * (the lease's guarded update is the compare-and-set), and a lease on its own stays without BEGIN and COMMIT.
 */
function fairLeaseOf(t: TxContext, req: LeaseRequest, extra: number): Promise<LeasedTask[]> {
  if (!t.leaseHints?.caps) return fairLease(t, t.tx, req, extra);
  return inTransaction(t, async (tx) => {
    await LOCK_CAPS.execute(tx);
    return fairLease(t, tx, req, extra);
  });
}

/** Two statements need a transaction: a lease on its own (inStatement) gets one. */
function inTransaction<T>(t: TxContext, fn: (tx: TxContext['tx']) => Promise<T>): Promise<T> {
  return t.tx.isTransaction ? fn(t.tx) : t.tx.transaction().execute((trx) => fn(trx));
}

/**
 * The fair lease (core/fair-share.ts): one statement reads each (account, project)'s next tasks and what
 * each holds, the core orders them, and the lease statement takes those tasks in that order. The
 * running_tasks caps are applied by the order (room = cap − held), counted after LOCK_CAPS (fairLeaseOf)
 * as the plain lease does. Candidates are not locked: the lease statement's guarded update is the
 * compare-and-set, so a task another lease took meanwhile is simply not taken here.
 */
async function fairLease(t: TxContext, tx: TxContext['tx'], req: LeaseRequest, extra: number): Promise<LeasedTask[]> {
  const want = Math.max(0, req.slots) + extra;
  const { rows } = await tx.executeQuery(fairQueueStatement(tx, req.profile, nowIso(), want, leaseBounds(req.capacity)));
  const candidates: FairCandidate[] = [];
  const held: HeldCount[] = [];
  const room = new Map<string, number>();
  let groups = 0;
  for (const row of rows as FairRow[]) {
    if (row.kind === 'task') candidates.push({ id: row.id!, job_id: row.job_id!, account_id: row.account_id!, project_id: row.project_id!, priority: row.priority!, available_at: row.available_at! });
    else if (row.kind === 'held') held.push({ account_id: row.account_id!, project_id: row.project_id!, n: row.n! });
    else if (row.kind === 'cap') room.set(row.account_id!, row.n!);
    else groups = row.n!;
  }
  for (const [account, cap] of room) room.set(account, cap - held.filter((h) => h.account_id === account).reduce((sum, h) => sum + h.n, 0));
  if (t.leaseHints) t.leaseHints.shared = groups > 1;
  const order = fairOrder(candidates, held, want, room);
  if (order.length === 0) return [];
  if (t.events.length > 0 && !t.hasXid) await sql`select pg_current_xact_id()`.execute(tx);
  const lease = leaseStatement(t, req, extra, order.map((c) => c.id), tx);
  return lease.read((await tx.executeQuery(lease.query)).rows);
}

/** A task's minimums against the worker's capacity (core/worker-fit.ts leaseBounds: four values). */
function fits(bounds: readonly unknown[]) {
  const [cpu, memory, storage, gpus] = bounds;
  return sql`(min_cpu is null or min_cpu <= ${cpu}) and (min_memory_gb is null or min_memory_gb <= ${memory})
        and (min_storage_gb is null or min_storage_gb <= ${storage}) and (min_gpu_count is null or min_gpu_count <= ${gpus})`;
}

type FairRow = { kind: 'task' | 'held' | 'cap' | 'groups'; id: string | null; job_id: string | null; account_id: string | null; project_id: string | null; priority: number | null; available_at: string | null; n: number | null };

/**
 * What a fair lease reads, as rows of four kinds: each (account, project) with queued tasks (a skip over
 * tasks_group_queue, one probe per pair, at most MAX_FAIR_GROUPS) with its next `want` tasks for the
 * profile; the leased tasks held per account and project (tasks_leases); the accounts' running_tasks
 * caps; how many pairs there were.
 */
function fairQueueStatement(tx: TxContext['tx'], profile: string, now: string, want: number, bounds: number[]): CompiledQuery<FairRow> {
  return fixedStatement(tx, 'fair-queue', [profile, now, want, MAX_FAIR_GROUPS, ...bounds], ([profileV, at, limitV, maxGroups, ...boundsV]) => sql<FairRow>`${sql.raw(PREPARED)}
    with recursive grp as (
      (select account_id, project_id, 1 as n from tasks where status = 'queued' order by account_id, project_id limit 1)
      union all
      select nxt.account_id, nxt.project_id, grp.n + 1 from grp cross join lateral (
        select account_id, project_id from tasks
        where status = 'queued' and (account_id, project_id) > (grp.account_id, grp.project_id)
        order by account_id, project_id limit 1
      ) nxt
      where grp.n < ${maxGroups}
    )
    select 'task' as kind, c.id, c.job_id, c.account_id, c.project_id, c.priority, c.available_at, null::int as n
    from grp cross join lateral (
      select id, job_id, account_id, project_id, priority, available_at from tasks
      where status = 'queued' and account_id = grp.account_id and project_id = grp.project_id
        and profile = ${profileV} and available_at <= ${at} and ${fits(boundsV)}
      order by priority desc, available_at, id
      limit ${limitV}
    ) c
    union all
    select 'held', null, null, account_id, project_id, null, null, count(*)::int from tasks
    where status in (${sql.join(TASK_LEASED_STATES)}) group by account_id, project_id
    union all
    select 'cap', null, null, id, null, null, null, running_tasks_cap from accounts where running_tasks_cap is not null
    union all
    select 'groups', null, null, null, null, null, null, (select count(*)::int from grp)`);
}

/** The lease statement, again past skipped tasks (running_tasks caps) while slots are left, on `tx`. */
async function leaseRounds(t: TxContext, tx: TxContext['tx'], req: LeaseRequest, extra: number): Promise<LeasedTask[]> {
  const all: LeasedTask[] = [];
  let request = req;
  let more = extra;
  for (let round = 1; ; round += 1) {
    if (t.events.length > 0 && !t.hasXid) await sql`select pg_current_xact_id()`.execute(tx);
    const lease = leaseStatement(t, request, more);
    const { rows } = await tx.executeQuery(lease.query);
    const got = lease.read(rows);
    all.push(...got);
    // An account filled its running_tasks cap within the window: the rest of its tasks there were skipped
    // and nothing past the window was read. The slots still free lease again (fewer than the slots means
    // every task got is a slot's; the next round no longer sees that account's tasks).
    if (Number(rows[0]?.skipped ?? 0) === 0 || got.length >= request.slots || round >= MAX_ROUNDS) return all;
    request = { ...request, slots: request.slots - got.length };
    more = 0;
  }
}

/**
 * The lease statement, and what makes its rows the leased tasks (recording its last event id in `t`): for
 * leasePostgresInTx, and for a submit that pipelines it after its insert (jobs-store.ts). It takes the
 * events `t` holds (emitted earlier in the transaction); with any, `t` must already have its xid.
 */
export function leaseStatement(t: TxContext, req: LeaseRequest, extra: number, chosen: string[] | null = null, tx: TxContext['tx'] = t.tx): { query: CompiledQuery<Row>; read(rows: readonly object[]): LeasedTask[] } {
  const now = nowIso();
  const slots = Math.max(0, req.slots);
  const limit = slots + extra;
  const lease = leaseTerms(t, req, now);
  const pending = JSON.stringify(eventRows(t.events.splice(0)));
  // Two texts, each compiled once (pg-template.ts): with the running_tasks caps' CTEs while an account has
  // a cap, and without them otherwise. The caps' CTEs cost the statement's dispatch ~0.7 ms here (scratch
  // runs of 200 dispatches: p50 3.9 → 4.7 ms); the plain one only counts the capped accounts, so that the
  // first lease after a cap appears (set by another process) switches this process over.
  // A third, for the fair lease (fairLease): the tasks it chose, in its order; caps were applied there.
  const capped = chosen === null && t.leaseHints?.caps === true;
  const values = [req.profile, now, limit, slots, limit + 1, req.workerId, lease.token, lease.expires, req.node, lease.reason, lease.waiting, pending, chosen ?? [], ...leaseBounds(req.capacity)];
  const key = chosen ? 'lease-chosen' : capped ? 'lease-capped' : 'lease';
  const query = fixedStatement(tx, key, values, ([profile, at, limitV, slotsV, beyond, workerId, token, expires, node, reason, waiting, events, ids, ...bounds]) => sql<Row>`${sql.raw(PREPARED)}
    with ${SHARED},
    ${chosen ? sql`cand as materialized (
      select t.id, t.job_id, t.account_id, t.priority, t.available_at, c.pos from tasks t
      join unnest(${ids}::text[]) with ordinality as c(id, pos) on c.id = t.id
      where t.status = 'queued'
      for update of t skip locked
    ),
    ranked as (select cand.*, null::bigint as room, 0::bigint as k from cand),` : capped ? sql`caps as materialized (${CAPS}),
    room as materialized (
      select caps.id as account_id, caps.cap - (select count(*) from tasks t
        where t.account_id = caps.id and t.status in (${sql.join(TASK_LEASED_STATES)})) as room
      from caps
    ),
    cand as materialized (
      select id, job_id, account_id, priority, available_at from tasks
      where status = 'queued' and profile = ${profile} and available_at <= ${at}
        and account_id not in (select account_id from room where room <= 0) and not (select found from shared) and ${fits(bounds)}
      order by priority desc, available_at, id
      limit ${limitV}
      for update skip locked
    ),
    ranked as (
      select cand.*, room.room,
        row_number() over (partition by cand.account_id order by cand.priority desc, cand.available_at, cand.id) as k
      from cand left join room on room.account_id = cand.account_id
    ),` : sql`cand as materialized (
      select id, job_id, account_id, priority, available_at from tasks
      where status = 'queued' and profile = ${profile} and available_at <= ${at} and not (select found from shared) and ${fits(bounds)}
      order by priority desc, available_at, id
      limit ${limitV}
      for update skip locked
    ),
    ranked as (select cand.*, null::bigint as room, 0::bigint as k from cand),`}
    numbered as (
      select ranked.id, ranked.job_id, ranked.priority, ranked.available_at, j.status as job_status,
        row_number() over (order by ${chosen ? sql`ranked.pos` : sql`ranked.priority desc, ranked.available_at, ranked.id`}) as n
      from ranked join jobs j on j.id = ranked.job_id
      where ranked.room is null or ranked.k <= ranked.room
    ),
    stop as (
      select coalesce(min(n), ${beyond}) as at from numbered
      where n > ${slotsV} and job_status <> 'running' and job_id not in (select job_id from numbered where n <= ${slotsV})
    ),
    chosen as (
      select numbered.id, numbered.n from numbered, stop where numbered.n <= ${slotsV} or numbered.n < stop.at
    ),
    leased as (
      update tasks set status = 'preparing', attempt = tasks.attempt + 1, worker_id = ${workerId},
        lease_token = ${token}, lease_expires_at = ${expires}, node = ${node},
        status_reason = case when chosen.n <= ${slotsV} then ${reason} else ${waiting} end
      from chosen
      where tasks.id = chosen.id and tasks.status in (${sql.join(LEASABLE)})
      returning tasks.id, tasks.job_id, tasks.project_id, tasks.account_id, tasks.idx, tasks.attempt, tasks.payload,
        tasks.runner_command, tasks.kind, chosen.n
    ),
    att as (
      insert into attempts (task_id, attempt, job_id, worker_id, node, status)
      select id, attempt, job_id, ${workerId}, ${node}, 'preparing' from leased
    ),
    started as (
      update jobs set status = 'running', started_at = ${at}, status_reason = ${reason}
      where id in (select job_id from leased) and status in (${sql.join(TO_RUNNING_JOB)})
      returning id, account_id, project_id
    ),
    ev as (
      insert into events (account_id, project_id, job_id, type, data, created_at)
      select account_id, project_id, job_id, type, data, created_at from (
        select e.account_id, e.project_id, e.job_id, e.type, e.data, e.created_at, 0 as grp, e.ord
        from rows from (json_to_recordset(${events}::json)
          as (account_id text, project_id text, job_id text, type text, data text, created_at text))
          with ordinality as e(account_id, project_id, job_id, type, data, created_at, ord)
        union all
        select s.account_id, s.project_id, s.id, 'job.status',
          json_build_object('job_id', s.id, 'status', 'running', 'status_reason', ${reason}::text)::text, ${at}, 1,
          (select min(l.n) from leased l where l.job_id = s.id)
        from started s
        union all
        select l.account_id, l.project_id, l.job_id, 'task.status',
          json_build_object('job_id', l.job_id, 'task_id', l.id, 'index', l.idx, 'status', 'preparing',
            'attempt', l.attempt, 'node', ${node}::text)::text, ${at}, 2, l.n
        from leased l
      ) e
      order by grp, ord
      returning id
    ),
    note as (
      select max(id) as last_event_id,
        case when max(id) is not null then pg_notify(${NOTIFY_CHANNEL}, max(id)::text) end as notified
      from ev
    )
    select leased.*, j.revision_id, j.content_hash, j.env, j.timeout_s, j.checkpoint, j.runner_command as job_runner_command,
      j.tasks_total, p.name as project, note.last_event_id, (select found from shared) as shared,
      ${capped ? sql`(select count(*) from ranked where ranked.room is not null and ranked.k > ranked.room) as skipped,
      (select count(*) from caps) as caps` : sql`0 as skipped,
      (select count(*) from accounts where running_tasks_cap is not null) as caps`}
    from note
    left join leased on true
    left join jobs j on j.id = leased.job_id
    left join projects p on p.id = j.project_id
    order by leased.n`);
  return { query, read: (rows) => readLease(t, lease, rows as Row[]) };
}

function readLease(t: TxContext, lease: LeaseTerms, rows: Row[]): LeasedTask[] {
  t.lastEventId = Math.max(t.lastEventId, rows[0]?.last_event_id ?? 0);
  if (t.leaseHints && rows[0]) {
    t.leaseHints.caps = Number(rows[0].caps) > 0;
    t.leaseHints.shared = rows[0].shared === true;
  }
  const taken = rows.filter((r) => r.id !== null);
  if (taken.length === 0) return [];
  t.hasXid = true;
  const jobs = new Map<string, LeasedJob>();
  for (const r of taken) {
    const row = r as Row & { job_runner_command: string | null };
    jobs.set(row.job_id, {
      revision_id: row.revision_id, content_hash: row.content_hash, env: row.env, timeout_s: row.timeout_s,
      checkpoint: row.checkpoint, runner_command: row.job_runner_command, tasks_total: row.tasks_total, project: row.project,
    });
  }
  return leasedTasks(lease, taken, jobs);
}
