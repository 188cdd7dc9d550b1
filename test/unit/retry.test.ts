/** SPEC §6 retries: doubling backoff while attempts remain, lost workers count, cancelled never retried. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffSeconds, MAX_BACKOFF_S, nextAttempt, type AttemptEnd } from '../../src/core/retry.js';

const now = Date.parse('2026-01-01T00:00:00.000Z');
const end = (extra: Partial<AttemptEnd>): AttemptEnd => ({ attempt: 1, maxAttempts: 3, backoffS: 2, reason: 'exit', ...extra });

describe('nextAttempt', () => {
  it('retries after backoff_s × 2^(attempt−1): 2 s, then 4 s', () => {
    assert.deepEqual(nextAttempt(end({ attempt: 1 }), now), { retry: true, availableAt: '2026-01-01T00:00:02.000Z', delayMs: 2000 });
    assert.deepEqual(nextAttempt(end({ attempt: 2 }), now), { retry: true, availableAt: '2026-01-01T00:00:04.000Z', delayMs: 4000 });
  });

  it('stops when the attempts are used up', () => {
    assert.deepEqual(nextAttempt(end({ attempt: 3 }), now), { retry: false, why: 'attempts_exhausted' });
    assert.deepEqual(nextAttempt(end({ attempt: 1, maxAttempts: 1 }), now), { retry: false, why: 'attempts_exhausted' });
  });

  it('a timeout and a lost worker are retried, and the lost worker\'s attempt counts', () => {
    assert.equal(nextAttempt(end({ reason: 'timeout' }), now).retry, true);
    assert.equal(nextAttempt(end({ reason: 'worker_lost', attempt: 2 }), now).retry, true);
    assert.equal(nextAttempt(end({ reason: 'worker_lost', attempt: 3 }), now).retry, false);
  });

  it('never retries a cancelled task or a too-large result', () => {
    assert.deepEqual(nextAttempt(end({ reason: 'cancelled' }), now), { retry: false, why: 'never_retried' });
    assert.deepEqual(nextAttempt(end({ reason: 'result_too_large' }), now), { retry: false, why: 'never_retried' });
  });

  it('backoff_s 0 retries at once', () => {
    assert.deepEqual(nextAttempt(end({ backoffS: 0, attempt: 2 }), now), { retry: true, availableAt: '2026-01-01T00:00:00.000Z', delayMs: 0 });
  });

  it('fractional backoff is kept to the millisecond', () => {
    assert.equal((nextAttempt(end({ backoffS: 0.25, attempt: 3, maxAttempts: 5 }), now) as { delayMs: number }).delayMs, 1000);
  });
});

describe('backoffSeconds', () => {
  it('doubles and is capped at an hour', () => {
    assert.deepEqual([1, 2, 3, 4].map((a) => backoffSeconds(a, 2)), [2, 4, 8, 16]);
    assert.equal(backoffSeconds(19, 2), MAX_BACKOFF_S);
    assert.equal(backoffSeconds(2000, 2), MAX_BACKOFF_S);
  });
});
