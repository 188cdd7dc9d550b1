/**
 * Group commit for job submits: the submits that arrive in one turn of the event loop (concurrent HTTP
 * requests) are created in one store transaction instead of one each. A large submit (a batch request)
 * skips the queue and, where the store can write side by side (PostgreSQL), is created in parts.
 *
 * Why: a transaction's commit is the largest single cost of a submit (CPU profile of single submits on
 * SQLite: 20 % of the server's time in COMMIT; on PostgreSQL each commit also waits for its WAL flush).
 * A large submit already shares its commit among its jobs; what bounds it on PostgreSQL is the insert,
 * which one backend executes on one core (~15 of a 1,000-job request's ~30 ms): two parts insert on two.
 *
 * Invariants:
 * - Each caller gets exactly the outcomes of its own jobs, in its order; an AppError outcome (a 409 on an
 *   idempotency key, …) stays with the job it belongs to. When a batch's transaction fails, each submit is
 *   tried again in a transaction of its own, so one bad submit fails only itself.
 * - A job whose project changed after it was planned (the store's `stale`) has the outcome STALE and was
 *   not created; the caller plans it again. Parts are separate transactions, so one part may be STALE
 *   while another was created.
 * - Parts are only made of jobs without idempotency keys (two jobs of one request may share a key, which
 *   only one transaction sees through). A part that fails leaves its jobs uncreated, each with a
 *   `store_failed` outcome, and its error in `failures` for the caller to log; when every part fails the
 *   submit fails as one.
 * - Nothing waits for a timer: a batch is flushed on the next turn (setImmediate), so a lone submit pays
 *   one turn of the loop and no more.
 * - At most `inFlight` batches run at once (PostgreSQL: 2, each on its own pooled connection); the submits
 *   that arrive meanwhile wait and go together as the next batch when one ends. A lone submit never waits.
 *   Why: with one round trip per transaction, fewer and bigger commits cost PostgreSQL less (10 concurrent
 *   single submits: ~2.4 → ~3.4 jobs per commit, its CPU 0.68 → 0.60 cores) and single submits went from
 *   5.0–5.8k to 6.1–6.9k/s (docs/decisions.md). When a transaction was four round trips, serialising
 *   batches halved that rate; unbounded stays the default (SQLite's one connection queues them anyway).
 *   Direct dispatch stays safe: each batch's `create` reserves worker slots synchronously before its
 *   transaction, so two batches never promise the same slot.
 */
import { AppError } from '../core/errors.js';
import type { LeasedTask } from '../core/model.js';
import type { CreateOutcome, CreatedJobs, NewJob } from '../store/port.js';

/** The outcome of a job not created because its project changed after it was planned: plan it again. */
export const STALE: unique symbol = Symbol('stale');

export type Outcome = CreateOutcome | AppError | typeof STALE;

export interface Created {
  outcomes: Outcome[];
  leased: LeasedTask[][];
  /** Errors of parts that failed while others were created (their jobs have `store_failed` outcomes). */
  failures?: unknown[];
}

/** Below twice this many jobs a submit is one transaction: a part's fixed costs would outweigh the gain. */
export const PART_MIN_JOBS = 250;

interface Waiting {
  jobs: NewJob[];
  resolve(created: Created): void;
  reject(error: unknown): void;
}

export class SubmitBatcher {
  private queue: Waiting[] = [];
  private scheduled = false;

  private inFlight = 0;
  private readonly parts: number;
  private readonly maxInFlight: number;

  /**
   * `parts`: how many transactions side by side a large submit may be split into (1: never);
   * `inFlight`: how many group-commit batches may run at once.
   */
  constructor(private readonly create: (jobs: NewJob[]) => Promise<CreatedJobs>, options: { parts?: number; inFlight?: number } = {}) {
    this.parts = options.parts ?? 1;
    this.maxInFlight = options.inFlight ?? Infinity;
  }

  submit(jobs: NewJob[]): Promise<Created> {
    const parts = Math.min(this.parts, Math.floor(jobs.length / PART_MIN_JOBS));
    if (parts > 1 && jobs.every((job) => job.idempotency === null)) return this.createInParts(splitByTasks(jobs, parts));
    return new Promise<Created>((resolve, reject) => {
      this.queue.push({ jobs, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.next();
      });
    });
  }

  /** Starts the waiting submits as one batch, unless `inFlight` batches are running (one that ends calls this again). */
  private next(): void {
    if (this.queue.length === 0 || this.inFlight >= this.maxInFlight) return;
    const batch = this.queue;
    this.queue = [];
    this.inFlight += 1;
    void this.flush(batch).finally(() => {
      this.inFlight -= 1;
      this.next();
    });
  }

  private async flush(batch: Waiting[]): Promise<void> {
    try {
      const created = await this.create(batch.flatMap((w) => w.jobs));
      const outcomes = outcomesOf(created, batch.reduce((n, w) => n + w.jobs.length, 0));
      let offset = 0;
      for (const waiting of batch) {
        waiting.resolve({ outcomes: outcomes.slice(offset, offset + waiting.jobs.length), leased: created.leased });
        offset += waiting.jobs.length;
      }
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      // One submit's failure must not fail the others: each goes again, in its own transaction.
      await Promise.all(batch.map((waiting) => this.create(waiting.jobs)
        .then((created) => waiting.resolve({ outcomes: outcomesOf(created, waiting.jobs.length), leased: created.leased }), waiting.reject)));
    }
  }

  private async createInParts(parts: NewJob[][]): Promise<Created> {
    const running: Array<Promise<CreatedJobs>> = [];
    for (const part of parts) {
      // A turn between parts: the part before goes out on its connection (once its pool checkout
      // resolves) while this one's rows are built, so the database starts on it sooner (scratch runs
      // alternating, 1,000-job requests: 34.2, 40.6, 35.6k jobs/s against 30.3, 34.4, 32.0k).
      if (running.length > 0) await new Promise((resolve) => setImmediate(resolve));
      const creating = this.create(part);
      creating.catch(() => {}); // a part failing during the turn above is read by allSettled below, not unhandled
      running.push(creating);
    }
    const settled = await Promise.allSettled(running);
    const failures = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason as unknown] : []));
    if (failures.length === parts.length) throw failures[0];
    const created: Created = { outcomes: [], leased: [] };
    settled.forEach((s, i) => {
      const part = parts[i]!;
      if (s.status === 'fulfilled') {
        created.outcomes.push(...outcomesOf(s.value, part.length));
        created.leased.push(...s.value.leased);
      } else {
        created.outcomes.push(...part.map(() => new AppError('store_failed', { reason: 'the batch was created in parts, and this part failed' })));
      }
    });
    if (failures.length > 0) created.failures = failures;
    return created;
  }
}

function outcomesOf(created: CreatedJobs, jobs: number): Outcome[] {
  return created.stale ? Array.from({ length: jobs }, () => STALE) : created.outcomes;
}

/** `parts` runs of consecutive jobs (order kept), cut where each holds about as many tasks as the others. */
export function splitByTasks(jobs: NewJob[], parts: number): NewJob[][] {
  const total = jobs.reduce((n, job) => n + job.tasks.length, 0);
  const out: NewJob[][] = [[]];
  let seen = 0;
  for (const job of jobs) {
    if (out.length < parts && out[out.length - 1]!.length > 0 && seen >= (total * out.length) / parts) out.push([]);
    out[out.length - 1]!.push(job);
    seen += job.tasks.length;
  }
  return out;
}
