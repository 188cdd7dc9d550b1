/**
 * The worker agent (SPEC §8): lease → prepare runtime → run → heartbeat → report.
 *
 *   wake (new work / poll) ─▶ lease(free slots) ─▶ for each task: prepare (cached per content hash)
 *        ▲                                          └▶ run ─▶ outcome ─▶ report (batched) ─▶ slot free ─┐
 *        └──────────────────────────────────────────────────────────────────────────────────────────────┘
 *
 * Invariants:
 * - Never more attempts than slots (slot-gate.ts); while tasks are short the agent holds up to `prefetch`
 *   more leased, so a freed slot starts the next task without waiting for the store.
 * - Every report carries the lease token. Started / live / ended reports are batched into one store
 *   transaction per flush, and a flush with ended attempts leases the room they freed in that same
 *   transaction.
 * - A heartbeat every 10 s renews all leases and brings cancellations; on stop, running attempts are
 *   stopped and handed back without spending an attempt.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LeasedTask, Worker } from '../core/model.js';
import type { AttemptReport } from '../core/model.js';
import type { Capacity } from '../core/worker-fit.js';
import type { Prepared, Runtime, RunningAttempt } from '../runtime/port.js';
import type { LeaseRequest, LiveUpdate, StartReport } from '../store/port.js';
import { attemptReport, withoutNul } from './attempt-report.js';
import type { WorkerClient } from './client.js';
import { OutputSink } from './output-sink.js';
import { RuntimeCache } from './runtime-cache.js';
import { SlotGate } from './slot-gate.js';

/** Prefetch only while attempts take less than this on average: for them a store round trip is a slot's idle time. */
const SHORT_TASK_MS = 250;
/** An attempt running longer than this means tasks are not short (any more): no prefetch. */
const LONG_RUN_MS = 1_000;
/** How long reports may wait for company while held tasks keep the slots busy. */
const COALESCE_MS = 5;
/** A prefetched task still waiting for a slot this long while tasks are not short goes back to the queue. */
const MAX_SLOT_WAIT_MS = 1_000;

export interface AgentOptions {
  slots: number;
  profile: string;
  /** What this worker offers against jobs' requirements (capacity.ts): reported, and sent with each lease. */
  capacity?: Capacity;
  workDir: string;
  embedded: boolean;
  tokenId?: string | null;
  heartbeatMs?: number;
  pollMs?: number;
  liveMs?: number;
  /** At most this many tasks leased beyond the slots while tasks are short (default 8 × slots; 0: never). */
  prefetch?: number;
  log?: { warn(obj: unknown, msg?: string): void };
}

interface Running {
  task: LeasedTask; attempt: RunningAttempt | null; sink: OutputSink | null; handBack: boolean; liveDirty: boolean;
  progress?: { progress: number; message?: string };
  /** Settles when the task is cancelled (or its lease lost) before its attempt exists: it then never runs. */
  stopped: Promise<'cancelled'>; stop(): void;
  /** performance.now() when it began waiting for a slot / when it took one (null: not now). */
  waitingSince: number | null; runningSince: number | null;
}

const promisedBy = (request: LeaseRequest) => request.slots + (request.prefetch ?? 0);

export class WorkerAgent {
  worker: Worker | null = null;
  private readonly running = new Map<string, Running>();
  private readonly runtimes: RuntimeCache;
  private pending = { started: [] as StartReport[], live: [] as LiveUpdate[], ended: [] as AttemptReport[] };
  private leasing = false;
  private leaseAgain = false;
  /** Slots promised to a lease in flight (pump) or to a submit's direct lease (reserve). */
  private promised = 0;
  private flushing: Promise<void> | null = null;
  private flushScheduled = false;
  private stopping = false;
  private timers: NodeJS.Timeout[] = [];
  private unsubscribe: (() => void) | null = null;
  private idle: Array<() => void> = [];
  private readonly gate: SlotGate;
  /** Moving average of recent attempts' durations (ms), null before the first one. */
  private recentMs: number | null = null;
  /** Moving average of report-and-lease round trips (ms). */
  private flushMs = 0;

  constructor(private readonly client: WorkerClient, private readonly runtime: Runtime, private readonly opts: AgentOptions) {
    this.runtimes = new RuntimeCache(client, runtime, opts.workDir);
    this.gate = new SlotGate(opts.slots);
  }

  async start(): Promise<Worker> {
    await mkdir(join(this.opts.workDir, 'outputs'), { recursive: true });
    this.worker = await this.client.register({
      embedded: this.opts.embedded, profile: this.opts.profile, slots: this.opts.slots, token_id: this.opts.tokenId ?? null,
      resources: { slots: this.opts.slots, ...this.opts.capacity }, runtime: this.runtime.describe?.() ?? { kind: this.runtime.kind },
    });
    this.runtimes.worker = this.worker;
    this.unsubscribe = this.client.onWork(() => this.pump());
    this.timers.push(setInterval(() => this.pump(), this.opts.pollMs ?? 500));
    this.timers.push(setInterval(() => void this.prepareRequested(), 2_000));
    this.timers.push(setInterval(() => void this.beat(), this.opts.heartbeatMs ?? 10_000));
    this.timers.push(setInterval(() => this.collectLive(), this.opts.liveMs ?? 250));
    for (const t of this.timers) t.unref();
    this.pump();
    return this.worker;
  }

  /** Leases as many tasks as there is room for; overlapping calls coalesce into one more round. */
  pump(): void {
    if (this.stopping || !this.worker) return;
    if (this.leasing) {
      this.leaseAgain = true;
      return;
    }
    const request = this.promiseRoom();
    if (!request) return;
    this.leasing = true;
    this.client.lease(request)
      .then((tasks) => {
        this.promised -= promisedBy(request);
        for (const task of tasks) this.begin(task);
      }, (err) => {
        this.promised -= promisedBy(request);
        this.opts.log?.warn({ err }, 'lease failed; will retry');
      })
      .finally(() => {
        this.leasing = false;
        if (this.leaseAgain) {
          this.leaseAgain = false;
          this.pump();
        }
      });
  }

  /**
   * Slots neither held nor promised: what a new job's direct dispatch may take (no prefetch there, so a
   * job's first tasks spread over idle workers).
   */
  private free(): number {
    return this.opts.slots - this.running.size - this.promised;
  }

  /**
   * Short tasks (recent average under SHORT_TASK_MS, none running past LONG_RUN_MS): holding some leased
   * ahead hides the store's round trip: enough for the slots to stay busy through two report-and-lease
   * round trips (the one in flight and the next, each with its COALESCE_MS wait), at least as many as
   * slots, at most `prefetch`. Long ones: none, so tasks wait in the queue where any worker can take them,
   * not behind this worker's slots.
   */
  private prefetchDepth(): number {
    const cap = this.opts.prefetch ?? this.opts.slots * 8;
    if (cap <= 0 || this.recentMs === null || this.recentMs > SHORT_TASK_MS) return 0;
    const now = performance.now();
    for (const entry of this.running.values()) {
      if (entry.runningSince !== null && now - entry.runningSince > LONG_RUN_MS) return 0;
    }
    const need = Math.ceil((2 * this.opts.slots * (this.flushMs + COALESCE_MS)) / Math.max(this.recentMs, 0.1));
    return Math.min(cap, Math.max(this.opts.slots, need));
  }

  /**
   * Promises the room for more tasks to one lease request (released by whoever makes the lease), or null:
   * the free slots, plus the prefetch while tasks are short.
   */
  private promiseRoom(): LeaseRequest | null {
    if (this.stopping || !this.worker) return null;
    const free = this.free();
    const room = free + this.prefetchDepth();
    if (room <= 0) return null;
    const slots = Math.max(0, free);
    const request = { workerId: this.worker.id, node: this.worker.node, profile: this.opts.profile, slots, prefetch: room - slots, ...this.capacity() };
    this.promised += room;
    return request;
  }

  /**
   * Direct dispatch (embedded workers): promises up to `max` free slots to a submit that will lease them
   * in its own transaction, and returns the lease request to make there, or null when no slot is free.
   * The submit must then call `acceptDirect` with what it leased (possibly nothing), exactly once.
   */
  reserve(profile: string, max: number): LeaseRequest | null {
    if (this.stopping || !this.worker || profile !== this.opts.profile) return null;
    const slots = Math.min(max, this.free());
    if (slots <= 0) return null;
    this.promised += slots;
    return { workerId: this.worker.id, node: this.worker.node, profile, slots, ...this.capacity() };
  }

  /** The lease request's capacity, when this worker has one (core/worker-fit.ts). */
  private capacity(): { capacity?: Capacity } {
    return this.opts.capacity ? { capacity: this.opts.capacity } : {};
  }

  acceptDirect(reserved: number, tasks: LeasedTask[]): void {
    this.promised -= reserved;
    if (this.stopping) {
      // Stopped between the reservation and its commit: give the tasks back without spending an attempt.
      for (const task of tasks) this.end(this.notRun(task, 'handed_back', null));
      return;
    }
    for (const task of tasks) this.begin(task);
    if (tasks.length < reserved) this.pump();
  }

  private begin(task: LeasedTask): void {
    let stop!: () => void;
    const stopped = new Promise<'cancelled'>((resolve) => { stop = () => resolve('cancelled'); });
    const entry: Running = { task, attempt: null, sink: null, handBack: false, liveDirty: false, stopped, stop, waitingSince: null, runningSince: null };
    this.running.set(task.task_id, entry);
    void this.execute(entry).catch((err) => this.opts.log?.warn({ err }, 'attempt bookkeeping failed')).finally(() => {
      this.running.delete(task.task_id);
      if (this.running.size === 0) for (const resolve of this.idle.splice(0)) resolve();
      // An ended report waiting for its flush leases the freed slot in its own transaction (flush()).
      if (this.pending.ended.length === 0) this.pump();
    });
  }

  private async execute(entry: Running): Promise<void> {
    const { task } = entry;
    let prepared: Prepared;
    try {
      // A cancel while the runtime is prepared (a build can take minutes) ends the task at once; the
      // preparation goes on for the revision's other tasks.
      const first = await Promise.race([this.runtimes.prepare(task), entry.stopped]);
      if (first === 'cancelled') return this.end(this.notRun(task, entry.handBack ? 'handed_back' : 'cancelled', null));
      prepared = first;
    } catch (err) {
      this.end(this.preparationFailed(task, err));
      return;
    }
    if (entry.handBack) return this.end(this.notRun(task, 'handed_back', null));
    entry.waitingSince = performance.now();
    const slot = await this.gate.take(entry.stopped);
    entry.waitingSince = null;
    if (!slot) return this.end(this.notRun(task, entry.handBack ? 'handed_back' : 'cancelled', null));
    entry.runningSince = performance.now();
    try {
      await this.attempt(entry, prepared);
    } finally {
      this.freeSlot(entry);
    }
  }

  /** Gives the entry's slot to the next waiting task (once), and counts the attempt's duration. */
  private freeSlot(entry: Running): void {
    if (entry.runningSince === null) return;
    const ms = performance.now() - entry.runningSince;
    entry.runningSince = null;
    this.recentMs = this.recentMs === null ? ms : this.recentMs * 0.8 + ms * 0.2;
    this.gate.release();
  }

  /** Runs the attempt in the slot it holds, and reports its end. */
  private async attempt(entry: Running, prepared: Prepared): Promise<void> {
    const { task } = entry;
    const worker = this.worker!;
    if (entry.handBack) return this.end(this.notRun(task, 'handed_back', null));
    const checkpointDir = task.checkpoint ? await this.client.checkpointDir(task.task_id) : null;
    const sink = OutputSink.open(join(this.opts.workDir, 'outputs', `${task.task_id}.${task.attempt}.log`));
    entry.sink = sink;
    let startedAt: string | null = null;
    const attempt = this.runtime.run({
      prepared, runnerCommand: task.runner_command ?? [], payload: task.payload, env: task.env, timeoutS: task.timeout_s,
      checkpointDir,
      ids: { jobId: task.job_id, taskId: task.task_id, taskIndex: task.index, taskCount: task.task_count, attempt: task.attempt, project: task.project, contentHash: task.content_hash },
      onOutput: (chunk) => { sink.write(chunk); entry.liveDirty = true; },
      onProgress: (progress) => { entry.progress = progress; entry.liveDirty = true; },
      onStart: () => {
        startedAt = new Date().toISOString();
        this.pending.started.push({ task_id: task.task_id, attempt: task.attempt, lease_token: task.lease_token, started_at: startedAt, node: worker.node });
        this.flushSoon();
      },
    });
    entry.attempt = attempt;
    const outcome = await attempt.outcome;
    this.freeSlot(entry); // the next task may start while this one's output and report are handled
    // Progress read at exit (after the last live report) goes out with the end, in the same batch, first.
    this.queueLive(entry);
    await sink.close();
    if (sink.hasFile) await this.client.keepOutput(task.job_id, task.task_id, task.attempt, sink.path);
    this.end(attemptReport({
      task_id: task.task_id, attempt: task.attempt, lease_token: task.lease_token, timeout_s: task.timeout_s,
      handBack: entry.handBack, outcome, output: sink.output(), output_tail: sink.outputTail(), started_at: startedAt,
      cold_start: prepared.cold ? prepared.timings : null,
    }));
  }

  private preparationFailed(task: LeasedTask, err: unknown): AttemptReport {
    const e = err as { code?: string; message?: string; phase?: string };
    const message = `Preparing the runtime failed${e.phase ? ` at ${e.phase}` : ''}: ${e.message ?? String(err)}`;
    return this.notRun(task, 'failed', { code: e.code ?? 'runtime_prepare_failed', message });
  }

  private notRun(task: LeasedTask, outcome: AttemptReport['outcome'], error: AttemptReport['error']): AttemptReport {
    return {
      task_id: task.task_id, attempt: task.attempt, lease_token: task.lease_token, exit_code: null, outcome, error,
      output: '', output_tail: '', result: null, result_quality: null, result_warnings: [], duration_ms: 0,
      started_at: null, finished_at: new Date().toISOString(), cold_start: null,
    };
  }

  private end(report: AttemptReport): void {
    this.pending.ended.push(report);
    this.flushSoon();
  }

  /**
   * Flushes once the current turn of the event loop is done, so the starts and ends that one read of the
   * launcher's pipe delivers share one transaction instead of one each.
   */
  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    const go = () => {
      this.flushScheduled = false;
      void this.flush();
    };
    // Slots busy with held tasks: nothing waits on this report, so it waits a moment to share its
    // transaction with the next ones (a PostgreSQL flush costs ~10 statements whatever its size).
    if (this.holding()) setTimeout(go, COALESCE_MS);
    else setImmediate(go);
  }

  /** Tasks are held for slots (prefetch is working): reports can wait a little to share a transaction. */
  private holding(): boolean {
    for (const entry of this.running.values()) if (entry.waitingSince !== null) return true;
    return false;
  }

  private collectLive(): void {
    const now = performance.now();
    const prefetching = this.prefetchDepth() > 0;
    for (const entry of this.running.values()) {
      this.queueLive(entry);
      // Tasks turned long while this one waited for a slot: back to the queue, where an idle worker can take it.
      if (!prefetching && entry.waitingSince !== null && now - entry.waitingSince > MAX_SLOT_WAIT_MS) {
        entry.handBack = true;
        entry.stop();
      }
    }
    if (this.pending.live.length > 0) this.flush();
  }

  /** Queues the attempt's latest progress and output tail, if they changed since the last report. */
  private queueLive(entry: Running): void {
    if (!entry.liveDirty || !entry.sink) return;
    entry.liveDirty = false;
    this.pending.live.push({
      task_id: entry.task.task_id, lease_token: entry.task.lease_token,
      output_tail: withoutNul(entry.sink.outputTail()), ...(entry.progress ? { progress: entry.progress } : {}),
    });
  }

  /** Sends everything pending in one report; one flush at a time, the next picks up what came meanwhile. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    const batch = this.pending;
    if (batch.started.length + batch.live.length + batch.ended.length === 0) return Promise.resolve();
    this.pending = { started: [], live: [], ended: [] };
    // Attempts ended: the slots they freed are leased again in the report's own transaction.
    const lease = batch.ended.length > 0 ? this.promiseRoom() : null;
    const sentAt = performance.now();
    const sent = lease
      ? this.client.reportAndLease(batch, lease).then(({ leased }) => {
        this.flushMs = this.flushMs * 0.8 + (performance.now() - sentAt) * 0.2;
        this.promised -= promisedBy(lease);
        if (this.stopping) {
          for (const task of leased) this.end(this.notRun(task, 'handed_back', null));
          return;
        }
        for (const task of leased) this.begin(task);
      })
      : this.client.report(batch).then(() => undefined);
    this.flushing = sent
      .then(() => undefined, (err) => {
        if (lease) this.promised -= promisedBy(lease);
        this.opts.log?.warn({ err }, 'report failed; retrying');
        this.pending.started.unshift(...batch.started);
        this.pending.ended.unshift(...batch.ended);
      })
      .finally(() => {
        this.flushing = null;
        if (this.pending.ended.length + this.pending.started.length > 0) setTimeout(() => void this.flush(), 50).unref();
      });
    return this.flushing;
  }

  private async beat(): Promise<void> {
    if (!this.worker) return;
    const held = [...this.running.values()].map((r) => ({ task_id: r.task.task_id, lease_token: r.task.lease_token }));
    try {
      const { cancel, lost } = await this.client.heartbeat(this.worker.id, held);
      for (const id of [...cancel, ...lost]) {
        const entry = this.running.get(id);
        if (entry?.attempt) entry.attempt.cancel();
        else entry?.stop();
      }
    } catch (err) {
      this.opts.log?.warn({ err }, 'heartbeat failed');
    }
  }

  /** Heartbeats now if anything runs (a cancel reaches the attempt at once), and looks for /init requests. */
  beatSoon(): void {
    if (this.running.size > 0) void this.beat();
    void this.prepareRequested();
  }

  /** /init: prepares the runtimes asked of this worker ahead of any job (once each); applies invalidations. */
  private async prepareRequested(): Promise<void> {
    if (!this.worker || this.stopping) return;
    try {
      const invalidated = await this.client.pendingInvalidations(this.worker.id);
      if (invalidated.length > 0) await this.runtimes.invalidate(invalidated);
      for (const target of await this.client.pendingInits(this.worker.id)) {
        if (!this.runtimes.has(target)) void this.runtimes.prepare(target).catch(() => undefined);
      }
    } catch (err) {
      this.opts.log?.warn({ err }, 'looking for /init requests failed');
    }
  }

  /** Stops leasing, hands running attempts back, flushes, and goes offline. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.unsubscribe?.();
    this.runtimes.close();
    for (const t of this.timers) clearInterval(t);
    const idle = this.running.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => this.idle.push(resolve));
    for (const entry of this.running.values()) {
      entry.handBack = true;
      // Still waiting for its runtime: hand it back now rather than after a build that may take minutes.
      if (entry.attempt) entry.attempt.cancel();
      else entry.stop();
    }
    await idle;
    await this.flush();
    if (this.worker) await this.client.setStatus(this.worker.id, 'offline').catch(() => undefined);
  }
}
