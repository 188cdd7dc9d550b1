/** Placement by requirements (core/worker-fit.ts) and the wait reason it gives (core/job-reason.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capacityOf, leaseBounds, requirementColumns, requirementsReason, unmet } from '../../src/core/worker-fit.js';
import { jobWaitReason } from '../../src/core/job-reason.js';
import type { TaskCounts, Worker } from '../../src/core/model.js';

const worker = (resources: Record<string, unknown>): Worker => ({
  id: 'w', node: 'node-1', embedded: true, profile: 'cpu', resources, runtime: {}, slots: 2, status: 'online', started_at: '', last_seen_at: '',
});
const queued = (n: number): TaskCounts => ({ queued: n, preparing: 0, running: 0, completed: 0, failed: 0, cancelled: 0 });

describe('requirements against workers', () => {
  it('keeps a task\'s stated minimums, null for the others', () => {
    assert.deepEqual(requirementColumns({ cpu: 2, memory_gb: 0.5 }), { min_cpu: 2, min_memory_gb: 0.5, min_storage_gb: null, min_gpu_count: null });
    assert.deepEqual(requirementColumns({}), { min_cpu: null, min_memory_gb: null, min_storage_gb: null, min_gpu_count: null });
  });

  it('bounds a lease by the worker\'s capacity; what it did not report bounds nothing', () => {
    const [cpu, memory, storage, gpus] = leaseBounds({ cpu: 4, memory_gb: 7.5 });
    assert.deepEqual([cpu, memory], [4, 7.5]);
    assert.ok(storage! >= 1e30 && gpus! >= 1e30);
    assert.ok(leaseBounds(undefined).every((b) => b >= 1e30));
  });

  it('names what a worker lacks, and counts unknown as enough', () => {
    assert.deepEqual(unmet({ cpu: 8, memory_gb: 2 }, { cpu: 4, memory_gb: 16 }), [{ key: 'cpu', need: 8, have: 4 }]);
    assert.deepEqual(unmet({ storage_gb: 500 }, { cpu: 4 }), []);
    assert.deepEqual(capacityOf({ slots: 2, cpu: 4, memory_gb: 'lots' }), { cpu: 4 });
  });

  it('explains a wait no live worker can end, with the most any worker has', () => {
    const reason = requirementsReason({ memory_gb: 64 }, [{ resources: { memory_gb: 7.74 } }, { resources: { memory_gb: 15.6 } }]);
    assert.equal(reason, 'waiting for a worker that meets the requirements: none of the 2 live worker(s) has memory_gb ≥ 64 (the most a live worker has is 15.6)');
    assert.equal(requirementsReason({ memory_gb: 8 }, [{ resources: { memory_gb: 4 } }, { resources: { memory_gb: 16 } }]), null, 'one worker meets it');
    assert.equal(requirementsReason({ memory_gb: 8 }, []), null, 'no worker at all is another reason');
  });

  it('is the job\'s status_reason while its tasks wait for such a worker', () => {
    const job = { profile: 'cpu', stored: null, requirements: { cpu: 32 } };
    assert.match(jobWaitReason(job, queued(2), [worker({ cpu: 2 })]), /none of the 1 live worker\(s\) has cpu ≥ 32 \(the most a live worker has is 2\)/);
    assert.match(jobWaitReason(job, queued(2), [worker({ cpu: 64 })]), /^waiting for a free slot/);
  });
});
