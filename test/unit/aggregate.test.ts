/**
 * SPEC §6 aggregate_result per job type (one task, fan-out in task order, sweep best/table, map_reduce,
 * benchmark statistics and ranking), job progress, and the final job status.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aggregateResults, jobOutcome, jobProgress, objectiveValue, type AggregateTask } from '../../src/core/aggregate.js';
import type { TaskCounts } from '../../src/core/model.js';

const task = (index: number, result: unknown, extra: Partial<AggregateTask> = {}): AggregateTask => ({
  index, item: null, status: 'completed', result, result_quality: 1, result_warnings: [], error: null, kind: 'task', ...extra,
});
const counts = (c: Partial<TaskCounts>): TaskCounts => ({ queued: 0, preparing: 0, running: 0, completed: 0, failed: 0, cancelled: 0, ...c });

describe('aggregateResults', () => {
  it('one task: its result', () => {
    assert.deepEqual(aggregateResults('structured_runner', [task(0, { a: 1 })], {}), { a: 1 });
    assert.equal(aggregateResults('structured_runner', [task(0, { a: 1 }, { status: 'failed' })], {}), null);
  });

  it('fan-out: the results in task order, null where a task did not complete, even for one task', () => {
    const tasks = [task(2, 'c'), task(0, 'a'), task(1, 'b', { status: 'failed' })];
    assert.deepEqual(aggregateResults('structured_runner', tasks, { fan_out: { by: 'x' } }), ['a', null, 'c']);
    assert.deepEqual(aggregateResults('structured_runner', [task(0, 'a')], { fan_out: { items: [1] } }), ['a']);
  });

  it('map_reduce: the reduce task\'s result', () => {
    const tasks = [task(0, 1, { kind: 'map' }), task(1, 2, { kind: 'map' }), task(2, { sum: 3 }, { kind: 'reduce' })];
    assert.deepEqual(aggregateResults('map_reduce', tasks, { fan_out: { items: [1, 2] } }), { sum: 3 });
    assert.equal(aggregateResults('map_reduce', tasks.slice(0, 2), {}), null);
  });

  it('sweep: best by objective and the table in task order', () => {
    const tasks = [
      task(0, { loss: 0.5 }, { params: { lr: 0.1 } }),
      task(1, { loss: 0.2 }, { params: { lr: 0.01 } }),
      task(2, { loss: 0.1 }, { params: { lr: 0.001 }, status: 'failed' }),
      task(3, { loss: 'n/a' }, { item: { lr: 1 } }),
    ];
    const out = aggregateResults('sweep', tasks, { sweep: { objective: { key: 'loss', goal: 'minimize' } } });
    assert.deepEqual(out, {
      objective: { key: 'loss', goal: 'minimize' },
      best: { index: 1, params: { lr: 0.01 }, result: { loss: 0.2 }, value: 0.2 },
      table: [
        { index: 0, params: { lr: 0.1 }, value: 0.5, status: 'completed' },
        { index: 1, params: { lr: 0.01 }, value: 0.2, status: 'completed' },
        { index: 2, params: { lr: 0.001 }, value: null, status: 'failed' },
        { index: 3, params: { lr: 1 }, value: null, status: 'completed' },
      ],
      note: null,
    });
    const max = aggregateResults('sweep', tasks, { sweep: { objective: { key: 'loss', goal: 'maximize' } } }) as { best: { index: number } };
    assert.equal(max.best.index, 0);
  });

  it('sweep ties go to the lower index', () => {
    const out = aggregateResults('sweep', [task(0, { v: 1 }), task(1, { v: 1 })], { sweep: { objective: { key: 'v', goal: 'maximize' } } }) as { best: { index: number } };
    assert.equal(out.best.index, 0);
  });

  it('sweep without an objective, or without numbers: best null and a note saying why', () => {
    const none = aggregateResults('sweep', [task(0, { v: 1 })], {}) as { best: unknown; note: string; table: unknown[] };
    assert.equal(none.best, null);
    assert.match(none.note, /no objective was given/);
    assert.equal(none.table.length, 1);
    const empty = aggregateResults('sweep', [task(0, { v: 'x' })], { sweep: { objective: { key: 'v', goal: 'maximize' } } }) as { note: string };
    assert.match(empty.note, /no completed point reported a number at result\.v/);
  });

  it('benchmark: per-strategy statistics of the objective and a ranking', () => {
    const tasks = [
      task(0, { ops: 10 }, { strategy: 'a', repeat: 0 }), task(1, { ops: 30 }, { strategy: 'b', repeat: 0 }),
      task(2, { ops: 20 }, { strategy: 'a', repeat: 1 }), task(3, null, { item: { strategy: 'b', repeat: 1 }, status: 'failed' }),
      task(4, { ops: 30 }, { strategy: 'a', repeat: 2 }), task(5, { ops: 50 }, { strategy: 'b', repeat: 2 }),
    ];
    const out = aggregateResults('benchmark', tasks, { objective: { key: 'ops', goal: 'maximize' } });
    assert.deepEqual(out, {
      metric: 'ops', goal: 'maximize',
      strategies: [
        { strategy: 'a', runs: 3, completed: 3, mean: 20, median: 20, min: 10, max: 30, stdev: 10 },
        { strategy: 'b', runs: 3, completed: 2, mean: 40, median: 40, min: 30, max: 50, stdev: Math.sqrt(200) },
      ],
      ranking: ['b', 'a'],
    });
  });

  it('benchmark without an objective: duration_ms, lower is better; strategies without values are not ranked', () => {
    const tasks = [
      task(0, null, { strategy: 'slow', duration_ms: 300 }), task(1, null, { strategy: 'fast', duration_ms: 100 }),
      task(2, null, { strategy: 'broken', status: 'failed', duration_ms: 5 }),
    ];
    const out = aggregateResults('benchmark', tasks, {}) as { metric: string; goal: string; ranking: string[]; strategies: Array<{ stdev: number | null; mean: number | null }> };
    assert.equal(out.metric, 'duration_ms');
    assert.equal(out.goal, 'minimize');
    assert.deepEqual(out.ranking, ['fast', 'slow']);
    assert.equal(out.strategies[0]!.stdev, 0);
    assert.equal(out.strategies[2]!.mean, null);
  });

  it('objectiveValue: finite numbers only, dotted keys walk objects', () => {
    assert.equal(objectiveValue({ a: 2 }, 'a'), 2);
    assert.equal(objectiveValue({ a: '2' }, 'a'), null);
    assert.equal(objectiveValue({ m: { loss: 0.3 } }, 'm.loss'), 0.3);
    assert.equal(objectiveValue({ 'm.loss': 1, m: { loss: 2 } }, 'm.loss'), 1);
    assert.equal(objectiveValue([1], '0'), null);
    assert.equal(objectiveValue({ a: Number.NaN }, 'a'), null);
  });
});

describe('jobProgress', () => {
  it('ended tasks over the total', () => {
    assert.equal(jobProgress(counts({ completed: 1, failed: 1, cancelled: 1, running: 1 })), 0.75);
    assert.equal(jobProgress(counts({})), 0);
  });
  it('counts tasks not created yet (the reduce) and running progress', () => {
    assert.equal(jobProgress(counts({ completed: 3 }), 4), 0.75);
    assert.equal(jobProgress(counts({ running: 1 }), 1, 0.4), 0.4);
    assert.equal(jobProgress(counts({ completed: 1 }), 1, 5), 1);
  });
});

describe('jobOutcome', () => {
  it('null while any task is open', () => {
    for (const open of ['queued', 'preparing', 'running'] as const) assert.equal(jobOutcome(counts({ completed: 1, [open]: 1 })), null);
  });
  it('completed / partial / failed / cancelled', () => {
    assert.equal(jobOutcome(counts({ completed: 3 })), 'completed');
    assert.equal(jobOutcome(counts({ completed: 2, failed: 1 })), 'partial');
    assert.equal(jobOutcome(counts({ completed: 2, cancelled: 1 })), 'partial');
    assert.equal(jobOutcome(counts({ failed: 3 })), 'failed');
    assert.equal(jobOutcome(counts({ failed: 1, cancelled: 2 })), 'cancelled');
    assert.equal(jobOutcome(counts({ cancelled: 2 })), 'cancelled');
  });
  it('map_reduce: a failed or cancelled reduce decides', () => {
    assert.equal(jobOutcome(counts({ completed: 3, failed: 1 }), { reduce: 'failed' }), 'failed');
    assert.equal(jobOutcome(counts({ completed: 3, cancelled: 1 }), { reduce: 'cancelled' }), 'cancelled');
    assert.equal(jobOutcome(counts({ completed: 4 }), { reduce: 'completed' }), 'completed');
  });
});
