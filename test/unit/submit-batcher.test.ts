/** Group commit of submits (services/submit-batcher.ts), with a fake store call. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SubmitBatcher, type Created } from '../../src/services/submit-batcher.js';
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
