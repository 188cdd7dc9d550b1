/** Group commit of submits (services/submit-batcher.ts), with a fake store call. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppError } from '../../src/core/errors.js';
import { PART_MIN_JOBS, splitByTasks, STALE, SubmitBatcher, type Created } from '../../src/services/submit-batcher.js';
import type { NewJob } from '../../src/store/port.js';

const job = (name: string) => ({ project: name }) as unknown as NewJob;
const outcomeOf = (j: NewJob) => ({ job_id: `job_${(j as unknown as { project: string }).project}`, replayed: false, created_at: 'now' });

describe('submit batcher', () => {
  it('creates the submits of one event-loop turn in one call and gives each its own outcomes, in order', async () => {
    const calls: NewJob[][] = [];
    const batcher = new SubmitBatcher(async (jobs) => {
      calls.push(jobs);
      return { outcomes: jobs.map(outcomeOf), leased: [] } satisfies Created;
    });
    const [a, b] = await Promise.all([batcher.submit([job('a1'), job('a2')]), batcher.submit([job('b1')])]);
    assert.equal(calls.length, 1);
    assert.deepEqual(calls[0]!.map((j) => (j as unknown as { project: string }).project), ['a1', 'a2', 'b1']);
    assert.deepEqual(a.outcomes.map((o) => (o as { job_id: string }).job_id), ['job_a1', 'job_a2']);
    assert.deepEqual(b.outcomes.map((o) => (o as { job_id: string }).job_id), ['job_b1']);
    const later = await batcher.submit([job('c1')]);
    assert.equal(calls.length, 2, 'a later turn is a new batch');
    assert.equal((later.outcomes[0] as { job_id: string }).job_id, 'job_c1');
  });

  it('runs at most inFlight batches at once: submits arriving meanwhile wait and go together next', async () => {
    const calls: string[][] = [];
    const gates: Array<() => void> = [];
    const batcher = new SubmitBatcher(async (jobs) => {
      calls.push(jobs.map((j) => (j as unknown as { project: string }).project));
      await new Promise<void>((resolve) => gates.push(resolve));
      return { outcomes: jobs.map(outcomeOf), leased: [] };
    }, { inFlight: 1 });
    const first = batcher.submit([job('a')]);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls, [['a']], 'a lone submit goes at once');
    const later = [batcher.submit([job('b')])];
    await new Promise((resolve) => setImmediate(resolve));
    later.push(batcher.submit([job('c')]));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(calls.length, 1, 'b and c wait while a runs, though they came in two turns');
    gates.shift()!();
    assert.equal(((await first).outcomes[0] as { job_id: string }).job_id, 'job_a');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(calls, [['a'], ['b', 'c']], 'then go as one batch');
    gates.shift()!();
    const [b, c] = await Promise.all(later);
    assert.equal((b!.outcomes[0] as { job_id: string }).job_id, 'job_b');
    assert.equal((c!.outcomes[0] as { job_id: string }).job_id, 'job_c');
  });

  it('a failed batch is retried submit by submit, so only the bad submit fails', async () => {
    let calls = 0;
    const batcher = new SubmitBatcher(async (jobs) => {
      calls += 1;
      if (jobs.some((j) => (j as unknown as { project: string }).project === 'bad')) throw new Error('store refused');
      return { outcomes: jobs.map(outcomeOf), leased: [] };
    });
    const results = await Promise.allSettled([batcher.submit([job('good')]), batcher.submit([job('bad')]), batcher.submit([job('fine')])]);
    assert.equal(calls, 4, 'one batch, then three alone');
    assert.equal(results[0]!.status, 'fulfilled');
    assert.equal(results[1]!.status, 'rejected');
    assert.equal(results[2]!.status, 'fulfilled');
  });
});

describe('submit batcher: large submits in parts', () => {
  const many = (prefix: string, n: number, tasks = 1) =>
    Array.from({ length: n }, (_, i) => ({ project: `${prefix}${i}`, idempotency: null, tasks: Array.from({ length: tasks }) }) as unknown as NewJob);
  const names = (jobs: NewJob[]) => jobs.map((j) => (j as unknown as { project: string }).project);

  it('splits a submit of 2 × PART_MIN_JOBS or more into consecutive parts, created side by side, outcomes in order', async () => {
    const calls: NewJob[][] = [];
    let running = 0;
    let most = 0;
    // The first part holds until the second has started (or 2 s pass): side by side whatever the load on
    // the machine; created one after the other, the first would wait out the 2 s and `most` stay 1.
    let secondStarted!: () => void;
    const second = new Promise<void>((resolve) => { secondStarted = resolve; });
    const batcher = new SubmitBatcher(async (jobs) => {
      calls.push(jobs);
      running += 1;
      most = Math.max(most, running);
      if (calls.length === 1) await Promise.race([second, new Promise((resolve) => setTimeout(resolve, 2_000))]);
      else secondStarted();
      running -= 1;
      return { outcomes: jobs.map(outcomeOf), leased: [[{ job_id: `job_${names(jobs)[0]}` } as never]] };
    }, { parts: 2 });
    const jobs = many('j', 2 * PART_MIN_JOBS);
    const created = await batcher.submit(jobs);
    assert.equal(calls.length, 2);
    assert.equal(most, 2, 'the parts run side by side');
    assert.deepEqual([...names(calls[0]!), ...names(calls[1]!)], names(jobs));
    assert.equal(calls[0]!.length, PART_MIN_JOBS);
    assert.deepEqual(created.outcomes.map((o) => (o as { job_id: string }).job_id), names(jobs).map((n) => `job_${n}`));
    assert.equal(created.leased.length, 2, 'both parts\' leases');
    assert.equal(created.failures, undefined);
  });

  it('keeps a submit whole below the size, with one part allowed, or when a job has an idempotency key', async () => {
    const calls: number[] = [];
    const create = async (jobs: NewJob[]) => { calls.push(jobs.length); return { outcomes: jobs.map(outcomeOf), leased: [] }; };
    await new SubmitBatcher(create, { parts: 2 }).submit(many('s', 2 * PART_MIN_JOBS - 1));
    await new SubmitBatcher(create, { parts: 1 }).submit(many('o', 2 * PART_MIN_JOBS));
    const keyed = many('k', 2 * PART_MIN_JOBS);
    keyed[7] = { ...keyed[7]!, idempotency: { key: 'x', request_hash: 'h' } };
    await new SubmitBatcher(create, { parts: 2 }).submit(keyed);
    assert.deepEqual(calls, [2 * PART_MIN_JOBS - 1, 2 * PART_MIN_JOBS, 2 * PART_MIN_JOBS]);
  });

  it('cuts parts by tasks, not jobs', () => {
    const jobs = [...many('big', 1, 300), ...many('small', 300, 1)];
    const [first, second] = splitByTasks(jobs, 2);
    assert.equal(first!.length, 1, 'the 300-task job is half the tasks on its own');
    assert.equal(second!.length, 300);
    assert.deepEqual(splitByTasks(many('one', 1, 10), 2).map((p) => p.length), [1], 'one job is never split');
  });

  it('a stale part answers STALE for its own jobs only; the other part stays created', async () => {
    const batcher = new SubmitBatcher(async (jobs) => names(jobs)[0] === 'j0'
      ? { outcomes: jobs.map(outcomeOf), leased: [] }
      : { outcomes: [], leased: [], stale: true as const }, { parts: 2 });
    const created = await batcher.submit(many('j', 2 * PART_MIN_JOBS));
    assert.equal(created.outcomes.length, 2 * PART_MIN_JOBS);
    assert.ok(created.outcomes.slice(0, PART_MIN_JOBS).every((o) => o !== STALE && (o as { job_id: string }).job_id));
    assert.ok(created.outcomes.slice(PART_MIN_JOBS).every((o) => o === STALE));
  });

  it('a failed part leaves its jobs uncreated with store_failed and hands its error over; all parts failing fails the submit', async () => {
    const refused = new Error('connection lost');
    const batcher = new SubmitBatcher(async (jobs) => {
      if (names(jobs)[0] !== 'j0') throw refused;
      return { outcomes: jobs.map(outcomeOf), leased: [] };
    }, { parts: 2 });
    const created = await batcher.submit(many('j', 2 * PART_MIN_JOBS));
    assert.ok(created.outcomes.slice(0, PART_MIN_JOBS).every((o) => (o as { job_id: string }).job_id));
    const failed = created.outcomes.slice(PART_MIN_JOBS);
    assert.ok(failed.every((o) => o instanceof AppError && o.code === 'store_failed' && o.status === 503));
    assert.deepEqual(created.failures, [refused]);
    const none = new SubmitBatcher(async () => { throw refused; }, { parts: 2 });
    await assert.rejects(none.submit(many('j', 2 * PART_MIN_JOBS)), refused);
  });

  it('a stale group commit answers STALE for each of its submits\' jobs', async () => {
    const batcher = new SubmitBatcher(async () => ({ outcomes: [], leased: [], stale: true as const }));
    const [a, b] = await Promise.all([batcher.submit([job('a1'), job('a2')]), batcher.submit([job('b1')])]);
    assert.deepEqual(a.outcomes, [STALE, STALE]);
    assert.deepEqual(b.outcomes, [STALE]);
  });
});
