/** Why an unfinished job waits: each branch of core/job-reason. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobWaitReason } from '../../src/core/job-reason.js';
import type { TaskCounts, Worker } from '../../src/core/model.js';

const counts = (c: Partial<TaskCounts>): TaskCounts => ({ queued: 0, preparing: 0, running: 0, completed: 0, failed: 0, cancelled: 0, ...c });
const worker = (profile: string, slots = 2): Worker => ({
  id: 'w', node: 'node-1', embedded: true, profile, resources: {}, runtime: {}, slots, status: 'online', started_at: '', last_seen_at: '',
});

describe('jobWaitReason', () => {
  it('says no worker is online', () => {
    assert.equal(jobWaitReason({ profile: 'cpu', stored: null }, counts({ queued: 3 }), []), 'waiting for a worker (none online)');
  });
  it('names the profile nobody serves', () => {
    assert.equal(jobWaitReason({ profile: 'gpu', stored: null }, counts({ queued: 1 }), [worker('cpu')]), 'waiting for a worker with profile gpu (none online)');
  });
  it('counts running tasks', () => {
    assert.equal(jobWaitReason({ profile: 'cpu', stored: null }, counts({ running: 4, queued: 6 }), [worker('cpu')]), '4 of 10 task(s) running, 6 waiting');
  });
  it('keeps the preparing reason the lease wrote', () => {
    assert.equal(jobWaitReason({ profile: 'cpu', stored: 'preparing runtime on node-2' }, counts({ preparing: 1 }), [worker('cpu')]), 'preparing runtime on node-2');
  });
  it('says slots are busy when workers exist', () => {
    assert.match(jobWaitReason({ profile: 'cpu', stored: null }, counts({ queued: 2 }), [worker('cpu', 4)]), /waiting for a free slot: 2 task\(s\) queued, 1 worker\(s\) with 4 slot/);
  });
  it('says the account\'s running_tasks quota is in use, while it is', () => {
    const cap = { limit: 2, leased: 2 };
    assert.equal(jobWaitReason({ profile: 'cpu', stored: null }, counts({ queued: 3 }), [worker('cpu', 4)], cap),
      'waiting: the account\'s running_tasks quota is in use (2 of 2)');
    assert.equal(jobWaitReason({ profile: 'cpu', stored: null }, counts({ running: 2, queued: 3 }), [worker('cpu', 4)], cap),
      '2 of 5 task(s) running, 3 waiting: the account\'s running_tasks quota is in use (2 of 2)');
    assert.match(jobWaitReason({ profile: 'cpu', stored: null }, counts({ queued: 3 }), [worker('cpu', 4)], { limit: 2, leased: 1 }), /waiting for a free slot/);
    assert.equal(jobWaitReason({ profile: 'cpu', stored: null }, counts({ queued: 3 }), [], cap), 'waiting for a worker (none online)');
  });
});
